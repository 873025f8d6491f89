package main

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"sluice/internal/fakemx"
	"sluice/queue"
)

// The open-relay and AUTH abuse proofs (issue 6, part 4). The forms are
// the classic relay tests (the ones of the old ORDB/abuse.net testers):
// each tries to make a relay forward mail for a foreign domain through
// percent hacks, quoted local parts, double @, RFC 821 source routes
// (RFC 5321 Appendix C) and UUCP bang paths.
var relayForms = []struct{ name, from, to string }{
	{"null sender", "<>", "<victim@dest.test>"},
	{"foreign sender", "<spammer@foreign.test>", "<victim@dest.test>"},
	{"own domain sender", "<postmaster@sluice.test>", "<victim@dest.test>"},
	{"percent hack", "<spammer@foreign.test>", "<victim%dest.test@[127.0.0.1]>"},
	{"percent hack to relay name", "<spammer@foreign.test>", "<victim%dest.test@sluice.test>"},
	{"quoted local part", "<spammer@foreign.test>", `<"victim@dest.test">`},
	{"quoted local part at relay", "<spammer@foreign.test>", `<"victim@dest.test"@sluice.test>`},
	{"double at", "<spammer@foreign.test>", "<victim@dest.test@[127.0.0.1]>"},
	{"source route", "<spammer@foreign.test>", "<@[127.0.0.1]:victim@dest.test>"},
	{"source route two hops", "<spammer@foreign.test>", "<@sluice.test,@[127.0.0.1]:victim@dest.test>"},
	{"bang path", "<spammer@foreign.test>", "<dest.test!victim>"},
	{"bang path at relay", "<spammer@foreign.test>", "<dest.test!victim@[127.0.0.1]>"},
	{"bang and percent", "<spammer@foreign.test>", "<dest.test!victim%foreign.test@sluice.test>"},
}

// tryRelay runs one transaction and reports the first refusal, or "" when
// the relay accepted the message.
func tryRelay(t *testing.T, smtp, local, from, to string) string {
	t.Helper()
	rc, code, text := dialSMTP(t, smtp, local)
	if code != 220 {
		return text
	}
	defer rc.c.Close()
	rc.must("EHLO client.test", 250)
	for _, c := range []string{"MAIL FROM:" + from, "RCPT TO:" + to} {
		if code, text := rc.cmd(c); code != 250 {
			return text
		}
	}
	if code, text := rc.cmd("DATA"); code != 354 {
		return text
	}
	rc.send("Subject: relay test\r\nMessage-ID: <relay-test@proof.test>\r\n\r\nrelay test\r\n")
	if code, text := rc.cmd("."); code != 250 {
		return text
	}
	return ""
}

// TestProofNotAnOpenRelay: from outside access.networks and without AUTH,
// every relay-test form is refused and nothing reaches the queue.
func TestProofNotAnOpenRelay(t *testing.T) {
	t.Parallel()
	mx := startFakeMX(t, fakemx.Options{})
	dir := t.TempDir()
	smtp := freeAddr(t)
	cfg := writeConfig(t, dir, smtp, routeTo("dest.test", mx.Addr())+"\n[access]\nnetworks = [\"192.0.2.0/24\"]\n")
	r := startRelay(t, cfg, smtp)
	for _, tc := range relayForms {
		refusal := tryRelay(t, smtp, "127.0.0.2", tc.from, tc.to)
		if refusal == "" || !strings.HasPrefix(refusal, "5") {
			t.Errorf("%s: MAIL FROM:%s RCPT TO:%s: refusal %q, want a 5xx", tc.name, tc.from, tc.to, refusal)
			continue
		}
		t.Logf("%-28s %s", tc.name, refusal)
	}
	r.stop(t)
	for st, n := range queueCounts(t, filepath.Join(dir, "data")) {
		if n != 0 {
			t.Errorf("queue holds %d recipients in state %s", n, st)
		}
	}
	if got := mx.Stats().Delivered; got != 0 {
		t.Errorf("%d messages reached the fake MX", got)
	}
}

// TestProofRoutingTricksFromAllowedClient: an allowed client may relay,
// but the relay never routes on %, !, a quoted @ or a second @, and
// refuses address literals by default: all with 553 (RFC 5321 §3.6.2
// lets a relay refuse source routes and RFC 1123 §5.2.16 the % hack). A
// quoted local part holding '@' is a valid address of the domain after
// the last '@' (RFC 5321 §4.1.2): it is accepted and goes to that
// domain's MX only, with its local part unchanged.
func TestProofRoutingTricksFromAllowedClient(t *testing.T) {
	t.Parallel()
	mx := startFakeMX(t, fakemx.Options{})
	dir := t.TempDir()
	smtp := freeAddr(t)
	cfg := writeConfig(t, dir, smtp, routeTo("dest.test", mx.Addr()))
	r := startRelay(t, cfg, smtp)
	tricks := []string{
		"<victim%dest.test@[127.0.0.1]>",
		"<victim@foreign.test@dest.test>",
		"<victim@dest.test@[127.0.0.1]>",
		"<victim@[127.0.0.1]>",
		"<dest.test!victim@[127.0.0.1]>",
		"<victim%foreign.test@[127.0.0.1]>",
	}
	for _, to := range tricks {
		refusal := tryRelay(t, smtp, "", "<app@src.test>", to)
		if !strings.HasPrefix(refusal, "553") {
			t.Errorf("RCPT TO:%s: refusal %q, want 553", to, refusal)
			continue
		}
		t.Logf("%-36s %s", to, refusal)
	}
	// Forms with no domain at all fail the RCPT syntax of RFC 5321
	// §4.1.2 in the SMTP parser itself: 501, a refusal just the same.
	for _, to := range []string{`<"victim@dest.test">`, "<dest.test!victim>", "<victim%dest.test>"} {
		refusal := tryRelay(t, smtp, "", "<app@src.test>", to)
		if !strings.HasPrefix(refusal, "553") && !strings.HasPrefix(refusal, "501") {
			t.Errorf("RCPT TO:%s: refusal %q, want 553 or 501", to, refusal)
		}
		t.Logf("%-36s %s", to, refusal)
	}
	// A source route is dropped (RFC 5321 Appendix C lets a server
	// ignore it), so the mail goes to the final mailbox only, never to
	// the host named in the route.
	if refusal := tryRelay(t, smtp, "", "<app@src.test>", "<@[192.0.2.1]:routed@dest.test>"); refusal != "" && !strings.HasPrefix(refusal, "553") {
		t.Errorf("source route: %q, want 553 or delivery to the final mailbox", refusal)
	}
	const quoted = `"victim@foreign.test"@dest.test`
	if refusal := tryRelay(t, smtp, "", "<app@src.test>", "<"+quoted+">"); refusal != "" {
		t.Errorf("RCPT TO:<%s>: refused with %q", quoted, refusal)
	}
	eventually(t, 15*time.Second, "the queue to drain", func() bool {
		_, ok := mx.Stats().Recipients[quoted]
		return ok && (mx.Stats().Delivered >= 2 || strings.Contains(relayLog(cfg), "routed@dest.test"))
	})
	r.stop(t)
	c := queueCounts(t, filepath.Join(dir, "data"))
	if n := c[queue.StateQueued] + c[queue.StateActive] + c[queue.StateHeld]; n != 0 {
		t.Errorf("%d recipients still queued: %v", n, c)
	}
	for rcpt := range mx.Stats().Recipients {
		if rcpt != "routed@dest.test" && rcpt != quoted {
			t.Errorf("the fake MX got mail for %q", rcpt)
		}
	}
}

// TestProofAuthAbuse: AUTH without TLS gets 523 (RFC 4954 §6); wrong
// passwords are counted per client IP and then get 421, closing the
// session; a client from another IP is unaffected; no password is
// logged.
func TestProofAuthAbuse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := selfSignedCert(t, dir)
	const good, bad = "good-Secret-7731", "wrong-Secret-5519"
	hash, err := bcrypt.GenerateFromPassword([]byte(good), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	smtp := freeAddr(t)
	cfg := writeConfig(t, dir, smtp, fmt.Sprintf(`
[tls]
cert_file = %q
key_file = %q

[access]
networks = ["192.0.2.0/24"]
auth_failures = 3

[[access.user]]
name = "app1"
password_hash = %q
`, cert, key, hash))
	startRelay(t, cfg, smtp)
	plain := func(user, pass string) string {
		return "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass))
	}

	rc, _, _ := dialSMTP(t, smtp, "127.0.0.6")
	rc.must("EHLO client.test", 250)
	if code, text := rc.cmd(plain("app1", bad)); code != 523 {
		t.Fatalf("AUTH without TLS: %q, want 523", text)
	}

	startTLS := func(local string) *rawSMTP {
		rc, _, _ := dialSMTP(t, smtp, local)
		rc.must("EHLO client.test", 250)
		rc.must("STARTTLS", 220)
		tc := tls.Client(rc.c, &tls.Config{InsecureSkipVerify: true, ServerName: "sluice.test"})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		rc.c, rc.r = tc, bufio.NewReader(tc)
		rc.must("EHLO client.test", 250)
		return rc
	}
	var last int
	var lastText string
	rc = startTLS("127.0.0.7")
	for i := range 10 {
		last, lastText = rc.cmd(plain("app1", bad))
		if last == 421 {
			if i != 3 {
				t.Errorf("421 after %d wrong passwords, want after auth_failures = 3", i+1)
			}
			t.Logf("421 after %d wrong passwords: %s", i+1, lastText)
			break
		}
		if last != 535 {
			t.Fatalf("wrong password %d: %q, want 535 then 421", i+1, lastText)
		}
	}
	if last != 421 {
		t.Fatalf("10 wrong passwords and no 421 (last %q)", lastText)
	}
	if !rc.closed() {
		t.Error("session still open after 421")
	}
	// The same IP stays throttled, even with the right password.
	rc = startTLS("127.0.0.7")
	if code, text := rc.cmd(plain("app1", good)); code != 421 {
		t.Errorf("throttled IP, good password: %q, want 421", text)
	}
	// Another IP is not punished for its neighbour.
	rc = startTLS("127.0.0.8")
	rc.must(plain("app1", good), 235)

	if log := relayLog(cfg); strings.Contains(log, bad) || strings.Contains(log, good) {
		t.Errorf("a password appears in the log:\n%s", log)
	}
}
