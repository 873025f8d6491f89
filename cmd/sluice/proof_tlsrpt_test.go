package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/mail"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"sluice/auth"
	"sluice/config"
	"sluice/internal/fakemx"
	"sluice/queue"
	"sluice/tlsrpt/tlsrpttest"
)

// TestProofTLSRPT (issue 14 item 4) drives the built binary with
// [tlsrpt] on: the outcomes of its TLS sessions (a verified one to
// good.test, a certificate mismatch at bad.test's MX) are in the queue
// file after a clean stop; once their day is over (the test moves the
// stored day back by one, as a midnight passing would), the next start
// mails each domain's report to its _smtp._tls rua through sluice's own
// queue, with RFC 8460 §5.3's headers and a gzip attachment whose JSON
// validates against tlsrpt/tlsrpttest/report.schema.json; the sessions
// that carry the reports are not tallied themselves.
func TestProofTLSRPT(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	a, _, port := startTLSMXPair(t, ca.issue("mx.good.test"), ca.issue("other.test"), fakemx.Options{KeepBodies: true})
	ns := serveDNS(t, testZone(
		"good.test. 300 IN MX 10 mx.good.test.",
		"mx.good.test. 300 IN A 127.0.0.1",
		"bad.test. 300 IN MX 10 mx.bad.test.",
		"mx.bad.test. 300 IN A 127.0.0.2",
		`_smtp._tls.bad.test. 300 IN TXT "v=TLSRPTv1; rua=mailto:tls-reports@good.test"`,
		`_smtp._tls.good.test. 300 IN TXT "v=TLSRPTv1;rua=mailto:tls-reports@good.test"`,
	))
	keyFile := filepath.Join(dir, "s1.pem")
	_, dkimRecord, err := auth.Keygen("sluice.test", "s1", "ed25519", keyFile)
	if err != nil {
		t.Fatal(err)
	}
	p, cfg, smtpAddr := startRelayIn(t, dir, tlsDelivery(port, ns.Addr(), ca.file, verifyPolicies("good.test", "bad.test"), fmt.Sprintf(`
[tlsrpt]
enabled = true
organization_name = "Sluice Test"
contact_info = "postmaster@sluice.test"
from = "tlsrpt-noreply@sluice.test"

[[auth.dkim]]
domain = "sluice.test"
selector = "s1"
key_file = %q
`, keyFile)))
	submitPlain(t, smtpAddr, "u@good.test")
	submitPlain(t, smtpAddr, "u@bad.test")
	eventually(t, 30*time.Second, "good.test delivered, bad.test refused by its policy", func() bool {
		return a.Stats().Recipients["u@good.test"].Deliveries == 1 && strings.Contains(relayLog(cfg), "TLS policy failure: destination paused")
	})
	p.stop(t)

	// The tally is in the queue file; move its day back by one.
	dataDir := filepath.Join(dir, "data")
	qo := queue.OptionsFrom(config.Default())
	qo.Path, qo.Logger = filepath.Join(dataDir, "queue.db"), slog.New(slog.DiscardHandler)
	q, err := queue.Open(qo)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := q.TLSReports("~")
	if err != nil {
		t.Fatal(err)
	}
	var keys, moved []string
	for k, v := range stored {
		start, rest, _ := strings.Cut(k, " ")
		sec, err := strconv.ParseInt(start, 16, 64)
		if err != nil {
			t.Fatalf("key %q", k)
		}
		keys = append(keys, k)
		moved = append(moved, fmt.Sprintf("%016x %s", sec-86400, rest))
		t.Logf("stored %s: %s", k, v)
	}
	var all strings.Builder
	for _, v := range stored {
		all.Write(v)
	}
	if len(stored) != 2 || !strings.Contains(all.String(), `"result-type":"certificate-host-mismatch","sending-mta-ip":"127.0.0.1","receiving-mx-hostname":"mx.bad.test","receiving-ip":"127.0.0.2"`) {
		t.Fatalf("stored tallies: %s", all.String())
	}
	err = q.UpdateTLSReports(moved, func(key string, _ []byte) ([]byte, error) {
		for i, m := range moved {
			if m == key {
				var v map[string]any
				json.Unmarshal(stored[keys[i]], &v)
				v["end"] = v["end"].(float64) - 86400
				return json.Marshal(v)
			}
		}
		return nil, fmt.Errorf("no key %q", key)
	})
	if err == nil {
		err = q.DeleteTLSReports(keys)
	}
	q.Close()
	if err != nil {
		t.Fatal(err)
	}

	p = startRelay(t, cfg, smtpAddr)
	var reports map[string][]byte
	eventually(t, 30*time.Second, "the two reports delivered to tls-reports@good.test", func() bool {
		reports = map[string][]byte{}
		for _, m := range a.Received() {
			if bytes.Contains(m, []byte("TLS-Report-Domain: ")) {
				msg, err := mail.ReadMessage(bytes.NewReader(m))
				if err == nil {
					reports[msg.Header.Get("TLS-Report-Domain")] = m
				}
			}
		}
		return len(reports) == 2
	})
	for domain, m := range reports {
		msg, _ := mail.ReadMessage(bytes.NewReader(m))
		if s := msg.Header.Get("Subject"); !strings.HasPrefix(s, "Report Domain: "+domain+" Submitter: sluice.test Report-ID: <") ||
			msg.Header.Get("TLS-Report-Submitter") != "sluice.test" {
			t.Errorf("%s: Subject %q", domain, s)
		}
		// RFC 8460 §3: signed by the reporting domain, the report's
		// header fields included.
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(m), &dkim.VerifyOptions{
			LookupTXT: func(string) ([]string, error) { return []string{dkimRecord}, nil },
		})
		if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "sluice.test" ||
			!strings.Contains(strings.Join(vs[0].HeaderKeys, ":"), "TLS-Report-Domain:TLS-Report-Submitter") {
			t.Errorf("%s: DKIM %v %+v", domain, err, vs)
		}
		_, j := tlsrpttest.MailedReport(t, msg)
		if err := tlsrpttest.Validate(j); err != nil {
			t.Errorf("%s: %v\n%s", domain, err, j)
		}
		if domain == "bad.test" && !bytes.Contains(j, []byte(`"result-type":"certificate-host-mismatch"`)) {
			t.Errorf("bad.test's report: %s", j)
		}
		if domain == "good.test" && !bytes.Contains(j, []byte(`"total-successful-session-count":1,"total-failure-session-count":0`)) {
			t.Errorf("good.test's report: %s", j)
		}
	}
	// The reports went to good.test over TLS; those sessions are not
	// in the new tally (a report is never reported about).
	p.stop(t)
	q, err = queue.Open(qo)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	stored, err = q.TLSReports("~")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range stored {
		if strings.Contains(k, "good.test") {
			t.Errorf("the reports' own delivery was tallied: %s: %s", k, v)
		}
	}
}
