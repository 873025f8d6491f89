package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"sluice/internal/fakemx"
)

// The smuggling and malformed-input proofs (issue 6, part 3). SMTP
// smuggling (CVE-2023-51764 and friends) works when two parties disagree
// on where DATA ends: RFC 5321 §4.1.1.4 says only CRLF.CRLF ends it, and
// §2.3.8 forbids a lone CR or LF in the text. Each sequence below is a
// way some server has been tricked into ending DATA early.
var smuggleSeqs = []struct{ name, seq string }{
	{"LF.LF", "\n.\n"},
	{"LF.CRLF", "\n.\r\n"},
	{"CRLF.LF", "\r\n.\n"},
	{"CR.CRLF", "\r.\r\n"},
	{"CR.CR", "\r.\r"},
	{"CR.LF", "\r.\n"},
	{"LF.CR", "\n.\r"},
	{"CRLF.CR", "\r\n.\r"},
	{"CRLF.CRCRLF", "\r\n.\r\r\n"},
}

// smuggleRelay starts a relay that routes dest.test to an in-process fake
// MX keeping the raw bytes it receives.
func smuggleRelay(t *testing.T, extra string) (*fakemx.Server, string) {
	t.Helper()
	mx := startFakeMX(t, fakemx.Options{KeepBodies: true})
	dir := t.TempDir()
	smtp := freeAddr(t)
	cfg := writeConfig(t, dir, smtp, routeTo("dest.test", mx.Addr())+extra)
	startRelay(t, cfg, smtp)
	return mx, smtp
}

// repliesUntilClose reads every reply until the server closes or stays
// silent for a second.
func (rc *rawSMTP) repliesUntilClose() []string {
	rc.t.Helper()
	var out []string
	for {
		code, text := rc.replyWithin(2 * time.Second)
		if code == 0 {
			return out
		}
		out = append(out, text)
	}
}

func TestProofSmuggling(t *testing.T) {
	t.Parallel()
	mx, smtp := smuggleRelay(t, "")
	accepted := 0
	for i, tc := range smuggleSeqs {
		rc, code, _ := dialSMTP(t, smtp, "")
		if code != 220 {
			t.Fatalf("greeting %d", code)
		}
		rc.must("EHLO client.test", 250)
		rc.must("MAIL FROM:<app@src.test>", 250)
		rc.must("RCPT TO:<user@dest.test>", 250)
		rc.must("DATA", 354)
		rc.send(fmt.Sprintf("Subject: first\r\nMessage-ID: <first-%d@proof.test>\r\n\r\nbody", i) +
			tc.seq +
			"MAIL FROM:<evil@src.test>\r\nRCPT TO:<victim@dest.test>\r\nDATA\r\n" +
			fmt.Sprintf("Subject: smuggled\r\nMessage-ID: <smuggled-%d@proof.test>\r\n\r\nsmuggled\r\n", i) +
			".\r\nQUIT\r\n")
		replies := rc.repliesUntilClose()
		// One final reply for the one transaction, then 221 for QUIT,
		// or a 5xx that closes the session (as Postfix does on a bare
		// LF). A smuggled transaction would add replies to its MAIL,
		// RCPT and DATA.
		ok := len(replies) == 2 && strings.HasPrefix(replies[1], "221") ||
			len(replies) == 1 && strings.HasPrefix(replies[0], "5") && rc.closed()
		if !ok {
			t.Errorf("%s: replies after DATA %q, want one final reply then 221 or a close", tc.name, replies)
			continue
		}
		if strings.HasPrefix(replies[0], "250") {
			accepted++
		}
		t.Logf("%s: %s", tc.name, replies[0])
	}
	// A well-formed control message, so the byte checks below see at
	// least one delivered message.
	rc, _, _ := dialSMTP(t, smtp, "")
	rc.must("EHLO client.test", 250)
	rc.must("MAIL FROM:<app@src.test>", 250)
	rc.must("RCPT TO:<user@dest.test>", 250)
	rc.must("DATA", 354)
	rc.send("Subject: control\r\nMessage-ID: <control@proof.test>\r\n\r\nline one\r\n..dot-stuffed\r\n")
	rc.must(".", 250)
	accepted++
	eventually(t, 20*time.Second, "every accepted message at the fake MX", func() bool {
		return mx.Stats().Delivered >= accepted
	})
	st := mx.Stats()
	if st.Delivered != accepted {
		t.Errorf("fake MX got %d messages, relay accepted %d", st.Delivered, accepted)
	}
	for id := range mx.MessageIDs() {
		if strings.Contains(id, "smuggled") {
			t.Errorf("smuggled message %s was delivered", id)
		}
	}
	if _, _, _, ok := mx.Recipient("victim@dest.test"); ok {
		t.Error("the smuggled recipient was contacted")
	}
	if st.BareLineEndings != 0 {
		t.Errorf("%d messages with bare line endings reached the fake MX", st.BareLineEndings)
	}
	for _, raw := range mx.Received() {
		if i := loneCRorLF(raw); i >= 0 {
			t.Errorf("lone CR or LF at byte %d of a delivered message: %q", i, raw[max(0, i-20):min(len(raw), i+20)])
		}
	}
}

// loneCRorLF returns the index of the first CR not followed by LF or LF
// not preceded by CR, or -1.
func loneCRorLF(b []byte) int {
	for i, c := range b {
		switch {
		case c == '\r' && (i+1 >= len(b) || b[i+1] != '\n'):
			return i
		case c == '\n' && (i == 0 || b[i-1] != '\r'):
			return i
		}
	}
	return -1
}

// TestProofOversizedThenDotLF: the relay keeps reading an oversized body
// to the real end of DATA, so a ".\n" and a command hidden after it get
// exactly one final reply and are never parsed as commands.
func TestProofOversizedThenDotLF(t *testing.T) {
	t.Parallel()
	mx, smtp := smuggleRelay(t, "\n[limits]\nmax_message_size = \"16KB\"\n")
	rc, _, _ := dialSMTP(t, smtp, "")
	rc.must("EHLO client.test", 250)
	rc.must("MAIL FROM:<app@src.test>", 250)
	rc.must("RCPT TO:<user@dest.test>", 250)
	rc.must("DATA", 354)
	body := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 600)
	rc.send(body + ".\n HELP\r\n.\r\nQUIT\r\n")
	replies := rc.repliesUntilClose()
	ok := len(replies) == 2 && strings.HasPrefix(replies[0], "5") && strings.HasPrefix(replies[1], "221") ||
		len(replies) == 1 && strings.HasPrefix(replies[0], "5") && rc.closed()
	if !ok {
		t.Fatalf("replies after DATA %q, want one 5xx final reply, then 221 or a close", replies)
	}
	if got := mx.Stats().Delivered; got != 0 {
		t.Fatalf("%d messages delivered", got)
	}
}

// TestProofLineAndRecipientLimits: a 2,001-byte command line gets 500
// (max_line_length 2000, RFC 5321 §4.5.3.1.4 allows more than 512), and
// recipient 1,001 gets 452 4.5.3 (RFC 5321 §4.5.3.1.8).
func TestProofLineAndRecipientLimits(t *testing.T) {
	t.Parallel()
	_, smtp := smuggleRelay(t, "")
	rc, _, _ := dialSMTP(t, smtp, "")
	rc.must("EHLO client.test", 250)
	long := "NOOP " + strings.Repeat("x", 2001-5)
	if code, text := rc.cmd(long); code != 500 {
		t.Fatalf("2,001-byte line: %q, want 500", text)
	}

	rc, _, _ = dialSMTP(t, smtp, "")
	rc.must("EHLO client.test", 250)
	rc.must("MAIL FROM:<app@src.test>", 250)
	var b bytes.Buffer
	for i := range 1000 {
		fmt.Fprintf(&b, "RCPT TO:<user%d@dest.test>\r\n", i)
	}
	rc.send(b.String())
	for i := range 1000 {
		if code, text := rc.reply(); code != 250 {
			t.Fatalf("recipient %d: %q", i+1, text)
		}
	}
	code, text := rc.cmd("RCPT TO:<user1000@dest.test>")
	if code != 452 || !strings.Contains(text, "4.5.3") {
		t.Fatalf("recipient 1,001: %q, want 452 4.5.3", text)
	}
	rc.must("RSET", 250)

	// A 2,001-byte line inside DATA is refused too.
	rc.must("MAIL FROM:<app@src.test>", 250)
	rc.must("RCPT TO:<user@dest.test>", 250)
	rc.must("DATA", 354)
	rc.send("Subject: long\r\n\r\n" + strings.Repeat("y", 2001) + "\r\n.\r\n")
	if code, text := rc.reply(); code < 500 {
		t.Fatalf("2,001-byte body line: %q, want 5xx", text)
	}
}

// TestProofHTTPFirstLine: a browser or an HTTP request forged through a
// proxy (cross-protocol attack) gets a 5xx and the connection closes.
func TestProofHTTPFirstLine(t *testing.T) {
	t.Parallel()
	_, smtp := smuggleRelay(t, "")
	rc, _, _ := dialSMTP(t, smtp, "")
	code, text := rc.cmd("GET / HTTP/1.1")
	if code < 500 || code > 599 {
		t.Fatalf("GET: %q, want 5xx", text)
	}
	rc.send("Host: sluice.test\r\n\r\n")
	if !rc.closed() {
		t.Fatal("connection still open after an HTTP request line")
	}
}

// TestProofTimeouts: an idle client gets 421 4.4.2 after idle_timeout,
// and a client stalled in the middle of DATA loses its slot after
// data_timeout, so per_client_connections = 1 lets the next one in.
func TestProofTimeouts(t *testing.T) {
	t.Parallel()
	_, smtp := smuggleRelay(t, "\n[limits]\nidle_timeout = \"1s\"\ndata_timeout = \"2s\"\nper_client_connections = 1\n")

	idle, _, _ := dialSMTP(t, smtp, "127.0.0.3")
	idle.must("EHLO client.test", 250)
	start := time.Now()
	code, text := idle.reply()
	if code != 421 || !strings.Contains(text, "4.4.2") {
		t.Fatalf("idle client: %q, want 421 4.4.2", text)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("idle timeout took %v", d)
	}
	if !idle.closed() {
		t.Fatal("idle connection not closed after 421")
	}

	stalled, _, _ := dialSMTP(t, smtp, "127.0.0.4")
	stalled.must("EHLO client.test", 250)
	stalled.must("MAIL FROM:<app@src.test>", 250)
	stalled.must("RCPT TO:<user@dest.test>", 250)
	stalled.must("DATA", 354)
	// Keep trickling so that an idle timer alone would not fire: only
	// the whole-upload bound can end this.
	stop := make(chan struct{})
	go func() {
		tk := time.NewTicker(300 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				stalled.c.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := stalled.c.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	defer close(stop)
	// The slot is taken: a second client from the same IP is refused.
	second, code, text := dialSMTP(t, smtp, "127.0.0.4")
	if code != 421 {
		t.Fatalf("second client during the stall: %q, want 421", text)
	}
	second.c.Close()
	code, text = stalled.replyWithin(10 * time.Second)
	if code != 421 || !strings.Contains(text, "4.4.2") {
		t.Fatalf("stalled DATA: %q, want 421 4.4.2", text)
	}
	eventually(t, 5*time.Second, "the slot of the stalled client to free", func() bool {
		rc, code, _ := dialSMTP(t, smtp, "127.0.0.4")
		rc.c.Close()
		return code == 220
	})
}
