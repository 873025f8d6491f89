package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"sluice/internal/fakemx"
)

// TestProofLargeMessageSpooled is issue 9 item 6 through the binary: a
// message above the inline threshold is spooled as a file before its 250,
// signed by streaming it (DKIM), delivered byte for byte (only our
// DKIM-Signature and Received fields in front), and its spool file is
// gone once it is delivered. The first attempt is deferred so that the
// file is seen while the message waits.
func TestProofLargeMessageSpooled(t *testing.T) {
	t.Parallel()
	bin := buildTool(t, "sluice/cmd/sluice")
	dir := t.TempDir()
	key := filepath.Join(dir, "s1.pem")
	out, err := exec.Command(bin, "dkim", "keygen", "--domain", "signed.test", "--selector", "s1", "--type", "ed25519", "--out", key).CombinedOutput()
	if err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	txt := regexp.MustCompile(`IN TXT "([^"]+)"`).FindSubmatch(out)
	if txt == nil {
		t.Fatalf("no TXT record in the keygen output:\n%s", out)
	}
	mx := startFakeMX(t, fakemx.Options{KeepBodies: true, Script: []fakemx.Rule{
		{Stage: fakemx.StageDataEnd, Match: "big@", Reply: "451 4.3.0 try again", Times: 1},
	}})
	smtpAddr := freeAddr(t)
	cfg := writeConfig(t, dir, smtpAddr, routeTo("dest.test", mx.Addr()))
	writeConfigRaw(t, cfg, strings.Replace(readFile(t, cfg), "[auth]\nmode = \"off\"", `[auth]
mode = "off"

[[auth.dkim]]
domain = "signed.test"
selector = "s1"
key_file = "s1.pem"`, 1))
	startRelay(t, cfg, smtpAddr)

	// About 3 MB: lines starting with a dot (dot-stuffing both ways), 8-bit
	// text, and no trailing empty lines.
	var b strings.Builder
	b.WriteString("From: App <app@signed.test>\r\nTo: big@dest.test\r\nSubject: large\r\nMessage-ID: <big-spooled@signed.test>\r\nDate: Sun, 29 Nov 2026 12:00:00 +0000\r\n\r\n")
	for i := 0; b.Len() < 3<<20; i++ {
		if i%7 == 0 {
			fmt.Fprintf(&b, ".line %d starts with a dot\r\n", i)
		} else {
			fmt.Fprintf(&b, "line %d, caf\xc3\xa9 and some more text to fill it up\r\n", i)
		}
	}
	msg := b.String()

	rc, _, _ := dialSMTP(t, smtpAddr, "")
	rc.must("EHLO client.test", 250)
	rc.must("MAIL FROM:<app@signed.test> BODY=8BITMIME", 250)
	rc.must("RCPT TO:<big@dest.test>", 250)
	rc.must("DATA", 354)
	rc.send(strings.ReplaceAll("\r\n"+msg, "\r\n.", "\r\n..")[2:] + ".\r\n")
	code, text := rc.reply()
	if code != 250 {
		t.Fatalf("DATA: %s\nlog:\n%s", text, relayLog(cfg))
	}
	id := text[strings.LastIndex(text, " ")+1:]
	spooled := filepath.Join(dir, "data", "spool", id)
	// The first attempt gets 451: the message waits, spooled.
	if fi, err := os.Stat(spooled); err != nil || fi.Size() < int64(len(msg)) {
		t.Fatalf("spool file %s after the 250: %v", spooled, err)
	}
	rc.cmd("QUIT")

	eventually(t, 30*time.Second, "the large message at the fake MX", func() bool { return mx.Stats().Delivered == 1 })
	eventually(t, 10*time.Second, "the spool file removed after delivery", func() bool {
		_, err := os.Stat(spooled)
		return errors.Is(err, os.ErrNotExist)
	})
	got := mx.Received()[0]
	if !bytes.HasSuffix(got, []byte(msg)) {
		t.Fatalf("delivered message (%d bytes) does not end with the submitted one (%d bytes)", len(got), len(msg))
	}
	added := string(got[:len(got)-len(msg)])
	if !strings.HasPrefix(added, "DKIM-Signature:") || !strings.Contains(added, "\r\nReceived: ") {
		t.Fatalf("fields added in front:\n%s", added)
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(got), &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if domain != "s1._domainkey.signed.test" {
				return nil, fmt.Errorf("unexpected lookup %s", domain)
			}
			return []string{string(txt[1])}, nil
		},
	})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "signed.test" {
		t.Fatalf("DKIM verification of the delivered message: %v %+v", err, vs)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "data", "spool")); len(entries) != 0 {
		t.Errorf("spool directory not empty: %v", entries)
	}
}

// TestProofMaxInflightBytes: limits.max_inflight_bytes bounds what the
// open transactions of every listener may declare; one more MAIL gets
// 452 4.3.1 until a transaction ends.
func TestProofMaxInflightBytes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	smtpAddr := freeAddr(t)
	cfg := writeConfig(t, dir, smtpAddr, "\n[limits]\nmax_message_size = \"1MB\"\nmax_inflight_bytes = \"2MB\"\n")
	startRelay(t, cfg, smtpAddr)
	a, _, _ := dialSMTP(t, smtpAddr, "")
	a.must("EHLO client.test", 250)
	a.must("MAIL FROM:<a@src.test>", 250) // reserves max_message_size: 1MB
	b, _, _ := dialSMTP(t, smtpAddr, "")
	b.must("EHLO client.test", 250)
	b.must("MAIL FROM:<b@src.test> SIZE=1048576", 250)
	c, _, _ := dialSMTP(t, smtpAddr, "")
	c.must("EHLO client.test", 250)
	if code, text := c.cmd("MAIL FROM:<c@src.test> SIZE=1000"); code != 452 || !strings.Contains(text, "4.3.1") {
		t.Fatalf("MAIL over the budget: %q, want 452 4.3.1", text)
	}
	a.must("RSET", 250)
	c.must("MAIL FROM:<c@src.test> SIZE=1000", 250)
}
