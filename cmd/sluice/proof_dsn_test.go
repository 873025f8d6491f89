package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/internal/testpeer"
)

// startSinkArgs is smtp-sink with extra options (-N: no DSN; -f RCPT:
// every recipient refused with a 5xx; -r RCPT: with a 4xx).
func startSinkArgs(t *testing.T, extra ...string) *sink {
	t.Helper()
	bin := needTool(t, "smtp-sink")
	addr := freeAddr(t)
	dir := filepath.Join(t.TempDir(), "sink")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{}, extra...), "-d", dir+"/%H%M%S.", addr, "1000")
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "root"}, args...)
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitListening(t, addr, 5*time.Second)
	return &sink{addr: addr, dir: dir, cmd: cmd}
}

// dumps are the transactions smtp-sink wrote (envelope as X- fields, then
// the message with LF endings).
func (s *sink) dumps() []string {
	var out []string
	ents, _ := os.ReadDir(s.dir)
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(s.dir, e.Name())); err == nil {
			out = append(out, string(b))
		}
	}
	return out
}

// waitDump waits for a transaction containing every one of want.
func (s *sink) waitDump(t *testing.T, cfg, what string, want ...string) string {
	t.Helper()
	var found string
	deadline := time.Now().Add(30 * time.Second)
	for found == "" {
		for _, d := range s.dumps() {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(d, w)
			}
			if ok {
				found = d
			}
		}
		if found == "" && time.Now().After(deadline) {
			t.Fatalf("no %s with %q after 30s; dumps:\n%s\nrelay log:\n%s", what, want, strings.Join(s.dumps(), "\n----\n"), relayLog(cfg))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return found
}

// TestProofDSN (issue 13 item 5): the DSN extension through the built
// binary with real peers. Python's smtplib gives NOTIFY, ORCPT, RET and
// ENVID (the swaks of Debian 12, 20201014, has no option for DSN
// parameters), swaks sends plain mail, and smtp-sink is every next hop:
// one offering DSN, one not (-N), one refusing every recipient (-f RCPT)
// and one deferring them (-r RCPT); DSNs go to a fourth for the sender's
// domain.
func TestProofDSN(t *testing.T) {
	t.Parallel()
	python := testpeer.Need(t, "python3")
	dsnHop := startSinkArgs(t)         // offers DSN
	plainHop := startSinkArgs(t, "-N") // does not
	refuse := startSinkArgs(t, "-f", "RCPT", "-N")
	deferHop := startSinkArgs(t, "-r", "RCPT", "-N")
	back := startSinkArgs(t) // the senders' domain: where DSNs arrive
	dir := t.TempDir()
	smtpAddr := freeAddr(t)
	routes := routeTo("dsn.test", dsnHop.addr) + routeTo("plain.test", plainHop.addr) + routeTo("refuse.test", refuse.addr) +
		routeTo("later.test", deferHop.addr) + routeTo("src.test", back.addr)
	cfg := writeConfig(t, dir, smtpAddr, routes)
	// A delay notice after 2 s instead of 4 h; retries every second or
	// two (writeConfig's policy).
	b := readFile(t, cfg)
	b = strings.Replace(b, "[listen]", "[delivery]\ndelay_warning = \"2s\"\n\n[listen]", 1)
	writeConfigRaw(t, cfg, b)
	startRelay(t, cfg, smtpAddr)
	host, port, _ := strings.Cut(smtpAddr, ":")

	// One message, two next hops: NOTIFY=SUCCESS to each.
	script := `
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]))
s.ehlo("client.test")
if not s.has_extn("dsn"):
    sys.exit("the relay does not offer DSN")
msg = "From: app@src.test\r\nTo: a@plain.test, b@dsn.test\r\nSubject: dsn-proof\r\n\r\nbody that HDRS keeps home\r\n"
refused = s.sendmail("app@src.test", ["a@plain.test", "b@dsn.test"], msg,
    mail_options=["RET=HDRS", "ENVID=env-proof+2B1"],
    rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;orig@src.test"])
if refused:
    sys.exit("refused: %r" % refused)
s.quit()
`
	if out, err := exec.Command(python, "-c", script, host, port).CombinedOutput(); err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}

	// The next hop that offers DSN gets the parameters, as received.
	got := dsnHop.waitDump(t, cfg, "delivery to the DSN next hop", "Subject: dsn-proof")
	for _, want := range []string{"X-Mail-Args: <app@src.test>", "RET=HDRS", "ENVID=env-proof+2B1",
		"X-Rcpt-Args: <b@dsn.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig@src.test"} {
		if !strings.Contains(got, want) {
			t.Errorf("the DSN next hop's transaction lacks %q:\n%s", want, got)
		}
	}
	// The one that does not gets none.
	got = plainHop.waitDump(t, cfg, "delivery to the plain next hop", "Subject: dsn-proof")
	if strings.Contains(got, "NOTIFY=") || strings.Contains(got, "ENVID=") {
		t.Errorf("DSN parameters sent to a next hop without DSN:\n%s", got)
	}
	// And so sluice reports success for a@plain.test, "relayed", and
	// nothing for b@dsn.test (its next hop reports).
	dsn := back.waitDump(t, cfg, "success DSN", "Action: relayed")
	for _, want := range []string{"X-Mail-Args: <>", "X-Rcpt-Args: <app@src.test>", "Subject: Successful Mail Delivery Report",
		"Final-Recipient: rfc822; a@plain.test", "Original-Recipient: rfc822;orig@src.test", "Original-Envelope-Id: env-proof+2B1",
		"Status: 2.0.0", "text/rfc822-headers"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("the success DSN lacks %q:\n%s", want, dsn)
		}
	}
	if strings.Contains(dsn, "Final-Recipient: rfc822; b@dsn.test") || strings.Contains(dsn, "body that HDRS keeps home") {
		t.Errorf("the success DSN names b@dsn.test or returns the body:\n%s", dsn)
	}

	// sendmail -N and -V give NOTIFY and ENVID.
	sm := exec.Command(buildTool(t, "sluice/cmd/sluice"), "sendmail", "--config", cfg, "-N", "success", "-V", "sm-env", "-f", "app@src.test", "s@plain.test")
	sm.Stdin = strings.NewReader("Subject: sendmail-dsn\n\nx\n")
	if out, err := sm.CombinedOutput(); err != nil {
		t.Fatalf("sluice sendmail: %v\n%s", err, out)
	}
	back.waitDump(t, cfg, "success DSN of the sendmail submission", "Action: relayed", "Original-Envelope-Id: sm-env", "Final-Recipient: rfc822; s@plain.test")

	// swaks, no DSN parameters: a refused recipient gets the default
	// failure DSN, with the original.
	if out, err := swaks(t, "--server", smtpAddr, "--from", "app@src.test", "--to", "x@refuse.test",
		"--header", "Subject: swaks-refused", "--body", "returned whole"); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	fail := back.waitDump(t, cfg, "failure DSN", "Action: failed", "x@refuse.test")
	for _, want := range []string{"Subject: Undelivered Mail Returned to Sender", "Status: 5.3.0", "message/rfc822", "returned whole"} {
		if !strings.Contains(fail, want) {
			t.Errorf("the failure DSN lacks %q:\n%s", want, fail)
		}
	}

	// NOTIFY=NEVER: refused, and no DSN; NOTIFY=FAILURE on a deferred
	// recipient: no delay notice; the default: one delay notice after
	// delivery.delay_warning, then no more.
	script = `
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]))
msg = "From: app@src.test\r\nSubject: %s\r\n\r\nx\r\n"
s.sendmail("app@src.test", ["never@refuse.test"], msg % "never", rcpt_options=["NOTIFY=NEVER"])
s.sendmail("app@src.test", ["failonly@later.test"], msg % "failonly", rcpt_options=["NOTIFY=FAILURE"])
s.sendmail("app@src.test", ["slow@later.test"], msg % "slow")
s.quit()
`
	if out, err := exec.Command(python, "-c", script, host, port).CombinedOutput(); err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	delayed := back.waitDump(t, cfg, "delay notice", "Action: delayed", "slow@later.test")
	for _, want := range []string{"Subject: Delayed Mail (still being retried)", "Status: 4.3.0", "text/rfc822-headers"} {
		if !strings.Contains(delayed, want) {
			t.Errorf("the delay notice lacks %q:\n%s", want, delayed)
		}
	}
	// Let a few more attempts pass (retries every 1 to 2 s), then count.
	eventually(t, 20*time.Second, "more attempts at slow@later.test", func() bool {
		return strings.Count(relayLog(cfg), "to=slow@later.test") >= 3
	})
	var notices, never, failonly int
	for _, d := range back.dumps() {
		if strings.Contains(d, "Action: delayed") && strings.Contains(d, "slow@later.test") {
			notices++
		}
		if strings.Contains(d, "never@refuse.test") {
			never++
		}
		if strings.Contains(d, "failonly@later.test") {
			failonly++
		}
	}
	if notices != 1 || never != 0 || failonly != 0 {
		t.Errorf("delay notices for slow@ %d (want 1), DSNs for never@ %d, for failonly@ %d (want 0)", notices, never, failonly)
	}
	if !bytes.Contains([]byte(relayLog(cfg)), []byte("to=never@refuse.test")) {
		t.Error("never@refuse.test was not attempted")
	}
}
