package main

import (
	"fmt"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"sluice/admin"
	"sluice/internal/fakemx"
)

// TestProofWrongStageRepliesAreNotDeliveries is issue 9 item 1 through
// the built binary: a receiver that answers DATA with 250, MAIL with 354,
// RCPT with 252, or the final dot with "554 ...\r\n250 2.0.0 extra" in one
// segment once. The old relay logged such a message "sent", deleted its
// body and sent no DSN. Now the first attempt is a protocol error
// (deferred, class protocol, no DSN, no pause of the destination), and the
// retry on a new connection delivers the body that was kept: exactly once.
func TestProofWrongStageRepliesAreNotDeliveries(t *testing.T) {
	t.Parallel()
	mx := startFakeMX(t, fakemx.Options{KeepBodies: true, Script: []fakemx.Rule{
		{Stage: fakemx.StageData, Match: "data250@", Reply: "250 2.0.0 Ok", Times: 1},
		{Stage: fakemx.StageMail, Match: "mail354@", Reply: "354 go ahead", Times: 1},
		{Stage: fakemx.StageRcpt, Match: "rcpt252@", Reply: "252 2.1.5 Cannot VRFY user", Times: 1},
		{Stage: fakemx.StageDataEnd, Match: "extra@", Reply: "554 5.7.1 rejected", Extra: "250 2.0.0 extra", Times: 1},
	}})
	dir := t.TempDir()
	smtpAddr := freeAddr(t)
	cfg := writeAdminConfig(t, dir, smtpAddr, freeAddr(t), routeTo("dest.test", mx.Addr()))
	startRelay(t, cfg, smtpAddr)

	cases := []struct{ from, to, stage, got string }{
		{"app@src.test", "data250@dest.test", "data", `"250 2.0.0 Ok" at data, expected 354`},
		{"mail354@src.test", "u1@dest.test", "mail", `"354 go ahead" at mail, expected 250`},
		{"app@src.test", "rcpt252@dest.test", "rcpt", `"252 2.1.5 Cannot VRFY user" at rcpt, expected 250 or 251`},
		{"app@src.test", "extra@dest.test", "data-end", `unrequested data after the reply "554 5.7.1 rejected": "250 2.0.0 extra`},
	}
	for i, c := range cases {
		msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %d\r\nMessage-ID: <proto-%d@src.test>\r\n\r\nbody %d\r\n", c.from, c.to, i, i, i)
		if err := smtp.SendMail(smtpAddr, nil, c.from, []string{c.to}, []byte(msg)); err != nil {
			t.Fatalf("submit %s: %v", c.to, err)
		}
	}
	eventually(t, 30*time.Second, "every message delivered by its retry", func() bool { return mx.Stats().Delivered == len(cases) })

	var msgs []admin.Message
	cliJSON(t, &msgs, "queue", "list", "--state", "sent", "--config", cfg)
	byRcpt := map[string]admin.Message{}
	for _, m := range msgs {
		var full admin.Message
		cliJSON(t, &full, "queue", "show", m.ID, "--config", cfg)
		for _, r := range full.Recipients {
			byRcpt[r.Addr] = full
		}
	}
	for _, c := range cases {
		m, ok := byRcpt[c.to]
		if !ok {
			t.Errorf("%s: not in the queue listing", c.to)
			continue
		}
		h := m.Recipients[0].History
		if len(h) < 2 {
			t.Errorf("%s: history %+v, want a deferred attempt then a delivery", c.to, h)
			continue
		}
		if h[0].Status != "deferred" || h[0].Class != "protocol" || !strings.Contains(h[0].Reply, "("+c.stage+")") || !strings.Contains(h[0].Reply, c.got) {
			t.Errorf("%s: first attempt %+v, want deferred, class protocol, naming %s and %s", c.to, h[0], c.stage, c.got)
		}
		if last := h[len(h)-1]; last.Status != "sent" || len(h) != 2 {
			t.Errorf("%s: history %+v, want exactly one protocol error then sent", c.to, h)
		}
	}
	st := mx.Stats()
	if st.Duplicates != 0 || st.Delivered != len(cases) {
		t.Errorf("fake MX: %d delivered, %d duplicates", st.Delivered, st.Duplicates)
	}
	for _, b := range mx.Received() {
		if !strings.Contains(string(b), "\r\n\r\nbody ") {
			t.Errorf("delivered without its body: %q", b)
		}
	}
	log := relayLog(cfg)
	if strings.Contains(log, "dsn queued") || strings.Contains(log, "status=bounced") {
		t.Errorf("a DSN or a bounce for a protocol error:\n%s", log)
	}
	if !strings.Contains(log, "relay: protocol error") {
		t.Errorf("no protocol error in the log:\n%s", log)
	}
	var doms admin.Domains
	cliJSON(t, &doms, "domains", "--config", cfg)
	if d, ok := findDest(doms, "dest.test"); !ok || d.LastHour["protocol"] != len(cases) || d.LastHour["unavailable"]+d.LastHour["throttle"] != 0 || d.State != "open" {
		t.Errorf("destination after protocol errors: %+v", d)
	}
}
