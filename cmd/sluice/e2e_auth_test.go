package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EAuthEnforceSignsAndRefuses drives issue 4 through the binary:
// `sluice dkim keygen` makes a key, a relay in enforce mode signs mail
// from that domain (the DKIM signature is what reaches the sink) and
// refuses mail that would fail DMARC with an actionable 550 5.7.1.
//
// DNS here is whatever the machine has: this sandbox answers NXDOMAIN for
// every public name, so "no DMARC record and nothing authenticates" is
// the verdict for an unsigned domain. Where the resolver fails instead,
// enforce mode answers 451 4.4.3 and the test says so and skips.
func TestE2EAuthEnforceSignsAndRefuses(t *testing.T) {
	bin := buildTool(t, "sluice/cmd/sluice")
	dir := t.TempDir()
	key := filepath.Join(dir, "s1.pem")
	out, err := exec.Command(bin, "dkim", "keygen", "--domain", "signed.test", "--selector", "s1", "--type", "ed25519", "--out", key).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "s1._domainkey.signed.test") || !strings.Contains(string(out), "k=ed25519") {
		t.Fatalf("keygen: %v\n%s", err, out)
	}

	snk := startSink(t)
	smtp := freeAddr(t)
	cfg := writeConfig(t, dir, smtp, routeTo("dest.test", snk.addr))
	// Replace the test default auth section with enforce + the key.
	writeConfigRaw(t, cfg, strings.Replace(readFile(t, cfg), "[auth]\nmode = \"off\"", `[auth]
mode = "enforce"
dns_timeout = "1s"

[[auth.dkim]]
domain = "signed.test"
selector = "s1"
key_file = "s1.pem"`, 1)+"\n[delivery]\noutbound_ips = [\"127.0.0.1\"]\n")
	startRelay(t, cfg, smtp)

	out1, err := swaks(t, "--server", smtp, "--from", "app@signed.test", "--to", "user@dest.test",
		"--header", "Message-Id: <auth-signed@sluice.test>", "--header", "From: App <app@signed.test>")
	if strings.Contains(out1, "451 4.4.3") {
		t.Skipf("the resolver here fails temporarily; enforce mode defers (451 4.4.3):\n%s", out1)
	}
	if err != nil || !strings.Contains(out1, "queued as") {
		t.Fatalf("signed domain not accepted: %v\n%s\nlog:\n%s", err, out1, relayLog(cfg))
	}
	// Issue 9 item 5: a headers-only message (no empty line, no body) is
	// signed and accepted, not deferred with 451 4.3.0 forever. Sent raw:
	// swaks would add the empty line.
	rc, _, _ := dialSMTP(t, smtp, "")
	rc.must("EHLO client.test", 250)
	rc.must("MAIL FROM:<app@signed.test>", 250)
	rc.must("RCPT TO:<user@dest.test>", 250)
	rc.must("DATA", 354)
	rc.send("From: App <app@signed.test>\r\nTo: user@dest.test\r\nSubject: ping\r\nMessage-Id: <auth-headers-only@sluice.test>\r\n.\r\n")
	if code, text := rc.reply(); code != 250 {
		t.Fatalf("headers-only message from the signed domain not accepted: %s\nlog:\n%s", text, relayLog(cfg))
	}
	rc.cmd("QUIT")
	out2, _ := swaks(t, "--server", smtp, "--from", "app@unsigned.test", "--to", "user@dest.test",
		"--header", "From: App <app@unsigned.test>")
	if !strings.Contains(out2, "550 5.7.1") || !strings.Contains(out2, "unsigned.test") {
		t.Fatalf("unsigned domain: want 550 5.7.1 naming the domain:\n%s", out2)
	}
	eventually(t, 15*time.Second, "the signed message at the sink", func() bool {
		return snk.messageIDs(t)["<auth-signed@sluice.test>"] == 1
	})
	eventually(t, 15*time.Second, "the headers-only message at the sink", func() bool {
		return snk.messageIDs(t)["<auth-headers-only@sluice.test>"] == 1
	})
	if b := snk.body(t, "<auth-headers-only@sluice.test>"); !strings.Contains(b, "DKIM-Signature:") {
		t.Fatalf("headers-only message delivered unsigned:\n%q", b)
	}
	body := snk.body(t, "<auth-signed@sluice.test>")
	if !strings.Contains(body, "DKIM-Signature:") || !strings.Contains(body, "d=signed.test") || !strings.Contains(body, "s=s1") {
		t.Fatalf("no DKIM signature by signed.test in the delivered message:\n%s", body)
	}
}
