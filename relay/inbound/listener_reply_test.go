package inbound

import (
	"strings"
	"testing"
)

// TestInboundReplyTranscript checks every reply of a session word for
// word: our own texts with the enhanced codes of RFC 3463 (2.1.0 after
// MAIL, 2.1.5 after RCPT), never go-smtp's default wording, and no client
// text echoed back.
func TestInboundReplyTranscript(t *testing.T) {
	t.Parallel()
	addr, _, st := startServer(t, Options{MaxRecipients: 2})
	c := dial(t, addr)
	steps := []struct{ send, want string }{
		{"", "220 " + testHost + " ESMTP Service Ready"},
		{"MAIL FROM:<a@example.test>", "503 5.5.1 Send HELO or EHLO first"},
		{"EHLO client.test", "250-" + testHost + " Hello client.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-SMTPUTF8\r\n250-DSN\r\n250-SIZE 26214400\r\n250 LIMITS RCPTMAX=2"},
		{"RCPT TO:<b@dest.test>", "503 5.5.1 Need MAIL command"},
		{"MAIL FROM:<a@example.test>", "250 2.1.0 Sender OK"},
		{"DATA", "503 5.5.1 Need RCPT command"},
		{"RCPT TO:<b@dest.test>", "250 2.1.5 Recipient OK"},
		{"RCPT TO:<c@dest.test>", "250 2.1.5 Recipient OK"},
		{"RCPT TO:<d@dest.test>", "452 4.5.3 Too many recipients"},
		{"DATA", "354 End data with <CR><LF>.<CR><LF>"},
		{simpleMsg + ".", "250 2.0.0 OK: queued as Q1"},
		{"RSET", "250 2.0.0 OK"},
		{"NOOP", "250 2.0.0 OK"},
		{"VRFY someone", "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"},
		{"MAIL FROM:<a@example.test> FROB=1", "555 5.5.4 Unsupported parameter"},
		{"MAIL FROM:<a@example.test> RET=ALL", "501 5.5.4 Unknown RET value"},
		{"MAIL FROM:<a@example.test> SIZE=x", "501 5.5.4 Bad SIZE parameter"},
		{"MAIL FROM:<a@example.test> SIZE=99999999", "552 5.3.4 Message size exceeds fixed limit"},
		{"MAIL FROM:<a@example.test>", "250 2.1.0 Sender OK"},
		{"RCPT TO:<b@dest.test> NOTIFY=SOMETIMES", "501 5.5.4 Malformed NOTIFY parameter value"},
		{"RCPT TO:<b@dest.test>", "250 2.1.5 Recipient OK"},
		{"DATA x", "501 5.5.4 Syntax: DATA"},
		{"BDAT 6\r\nSubj\r\n", "250 2.0.0 OK: chunk received"},
		{"BDAT 0 LAST", "250 2.0.0 OK: queued as Q2"},
		{"MAIL FROM", "501 5.5.4 Syntax: MAIL FROM:<address>"},
		{"AUTH", "501 5.5.4 Syntax: AUTH mechanism"},
		{"HELO", "501 5.5.4 Syntax: EHLO hostname"},
		{"XYZZY \x1b[31m", "500 5.5.2 Command unrecognized"},
		{"QUIT", "221 2.0.0 Bye"},
	}
	for _, s := range steps {
		if s.send != "" {
			if strings.HasSuffix(s.send, "\n") {
				c.send(s.send)
			} else {
				c.send(s.send + "\r\n")
			}
		}
		if got := strings.TrimSuffix(c.reply(), "\r\n"); got != s.want {
			t.Errorf("%q:\n got %q\nwant %q", s.send, got, s.want)
		}
	}
	c.expectClosed()
	if n := len(st.all()); n != 2 {
		t.Errorf("%d messages stored, want 2", n)
	}
}

// TestInboundReplyErrorLimit: go-smtp closes after too many bad commands;
// the client is told with a 421 (RFC 5321 §3.8), not a permanent 500.
func TestInboundReplyErrorLimit(t *testing.T) {
	t.Parallel()
	addr, _, _ := startServer(t, Options{})
	c := dial(t, addr)
	c.hello()
	for range 3 {
		c.cmd("FOO", "500 5.5.2 Command unrecognized")
	}
	c.send("FOO\r\n")
	if r := c.reply() + c.reply(); r != "500 5.5.2 Command unrecognized\r\n421 4.7.0 Too many errors, closing connection\r\n" {
		t.Errorf("got %q", r)
	}
	c.expectClosed()
}

// TestInboundReplyAuthTexts: the SASL replies go-smtp writes itself use
// the codes of RFC 4954 §4/§6.
func TestInboundReplyAuthTexts(t *testing.T) {
	t.Parallel()
	cfg, pool := testTLS(t)
	addr, _, _ := startServer(t, Options{TLSConfig: cfg, Users: []User{testUser(t, "app", "secret")}})
	c := dial(t, addr)
	c.hello()
	c.startTLS(pool)
	for _, s := range []struct{ send, want string }{
		{"AUTH PLAIN !!!", "501 5.5.2 Cannot decode base64 response"},
		{"AUTH PLAIN " + b64("nonul"), "501 5.5.2 Malformed authentication response"},
		{"AUTH LOGIN", "334 VXNlcm5hbWU6"},
		{"*", "501 5.7.0 Authentication cancelled"},
		{"AUTH PLAIN " + plain("app", "secret"), "235 2.7.0 Authentication successful"},
	} {
		c.send(s.send + "\r\n")
		if got := strings.TrimSuffix(c.reply(), "\r\n"); got != s.want {
			t.Errorf("%q:\n got %q\nwant %q", s.send, got, s.want)
		}
	}
}
