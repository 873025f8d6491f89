package inbound

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"sluice/mailbox"
	"sluice/queue"
)

func TestInboundAcceptsAndAddsTraceHeaders(t *testing.T) {
	t.Parallel()
	clock := newClock()
	clock.Set(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	var kicked []string
	addr, _, st := startServer(t, Options{Now: clock.Now, OnEnqueue: func(id string) { kicked = append(kicked, id) }})
	c := dial(t, addr)
	banner := c.expect("220 ")
	if !strings.Contains(banner, testHost) {
		t.Errorf("banner %q lacks hostname", banner)
	}
	ehlo := c.cmd("EHLO client.test", "250 ")
	for _, want := range []string{"250-" + testHost, "SIZE 26214400", "SMTPUTF8", "LIMITS RCPTMAX=1000"} {
		if !strings.Contains(ehlo, want) {
			t.Errorf("EHLO reply lacks %q:\n%s", want, ehlo)
		}
	}
	if strings.Contains(ehlo, "STARTTLS") || strings.Contains(ehlo, "AUTH") {
		t.Errorf("EHLO offers STARTTLS/AUTH without TLS config:\n%s", ehlo)
	}
	r := c.sendMessage("a@example.test", "b@dest.test", "Subject: hi\r\n\r\n..dot\r\nbody\r\n")
	if !strings.HasPrefix(r, "250 2.0.0 OK: queued as Q1") {
		t.Fatalf("DATA reply %q", r)
	}
	c.cmd("QUIT", "221")
	msgs := st.all()
	if len(msgs) != 1 {
		t.Fatalf("stored %d messages", len(msgs))
	}
	m := msgs[0]
	if m.From != "a@example.test" || len(m.Rcpts) != 1 || m.Rcpts[0] != "b@dest.test" || m.Helo != "client.test" {
		t.Errorf("envelope %+v", m)
	}
	if !m.Received.Equal(clock.Now()) || m.ClientAddr.String() != "127.0.0.1" {
		t.Errorf("received %v from %v", m.Received, m.ClientAddr)
	}
	body := string(m.Body)
	for _, want := range []string{
		"Received: from client.test ([127.0.0.1])\r\n\tby " + testHost + " with ESMTP id ",
		"\tfor <b@dest.test>;\r\n\tWed, 25 Nov 2026 12:00:00 +0000\r\n",
		"Message-ID: <",
		"@" + testHost + ">\r\n",
		"Date: Wed, 25 Nov 2026 12:00:00 +0000\r\n",
		"\r\n\r\n.dot\r\nbody\r\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	if !strings.HasPrefix(body, "Received: ") {
		t.Errorf("Received not first:\n%s", body)
	}
	if len(kicked) != 1 || kicked[0] != "Q1" {
		t.Errorf("OnEnqueue got %v", kicked)
	}
}

func TestInboundKeepsExistingMessageIDAndDate(t *testing.T) {
	t.Parallel()
	addr, _, st := startServer(t, Options{})
	c := dial(t, addr)
	c.hello()
	msg := "Message-ID: <x@y>\r\ndate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nhi\r\n"
	if r := c.sendMessage("a@example.test", "b@dest.test", msg); !strings.HasPrefix(r, "250") {
		t.Fatal(r)
	}
	body := string(st.all()[0].Body)
	if strings.Count(strings.ToLower(body), "message-id:") != 1 || strings.Count(strings.ToLower(body), "\ndate:") != 1 {
		t.Errorf("headers duplicated:\n%s", body)
	}
}

func TestInboundEnvelope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, mail, rcpt string
		mailReply        string
		rcptReply        string
		stored           string // canonical recipient
		literals         bool
	}{
		{"plain", "<a@example.test>", "<b@dest.test>", "250", "250", "b@dest.test", false},
		{"null sender", "<>", "<b@dest.test>", "250", "250", "b@dest.test", false},
		{"quoted local part requoted", "<a@example.test>", `<"john doe"@dest.test>`, "250", "250", `"john doe"@dest.test`, false},
		{"quoted at sign", "<a@example.test>", `<"x@y"@dest.test>`, "250", "250", `"x@y"@dest.test`, false},
		{"quoted at sign, issue 9", "<a@example.test>", `<"john@doe"@example.org>`, "250", "250", `"john@doe"@example.org`, false},
		{"quoted backslash and at sign", "<a@example.test>", `<"x\\@y"@example.org>`, "250", "250", `"x\\@y"@example.org`, false},
		{"quoted-pair at sign", "<a@example.test>", `<"x\@y"@example.org>`, "250", "250", `"x@y"@example.org`, false},
		{"empty quoted local part", "<a@example.test>", `<""@example.org>`, "250", "250", `""@example.org`, false},
		{"quoted angle bracket and space", "<a@example.test>", `<"a> b"@dest.test> NOTIFY=NEVER`, "250", "250", `"a> b"@dest.test`, false},
		{"quoted angle bracket", "<a@example.test>", `<"a> b"@dest.test>`, "250", "250", `"a> b"@dest.test`, false},
		{"needless quotes dropped", "<a@example.test>", `<"john"@dest.test>`, "250", "250", "john@dest.test", false},
		{"legacy dots quoted", "<a@example.test>", "<first..last@dest.test>", "250", "250", `"first..last"@dest.test`, false},
		{"quoted sender", `<"x@y"@example.test>`, "<b@dest.test>", "250", "250", "b@dest.test", false},
		{"empty quoted sender", `<""@example.test>`, "<b@dest.test>", "250", "250", "b@dest.test", false},
		{"two at signs sender", "<a@b@example.test>", "", "553 5.1.7", "", "", false},
		{"two at signs", "<a@example.test>", "<x@y@dest.test>", "250", "553 5.1.3", "", false},
		{"unclosed path", "<a@example.test>", "<b@dest.test", "250", "501 5.5.4", "", false},
		{"unclosed sender path", "<a@example.test", "", "501 5.5.4", "", "", false},
		{"postmaster without domain", "<a@example.test>", "<Postmaster>", "250", "553 5.1.3", "", false},
		{"empty recipient", "<a@example.test>", "<>", "250", "553 5.1.3", "", false},
		{"percent hack is just a local part", "<a@example.test>", "<u%other.test@dest.test>", "250", "250", "u%other.test@dest.test", false},
		{"bang path is just a local part", "<a@example.test>", "<other!u@dest.test>", "250", "250", "other!u@dest.test", false},
		{"source route dropped", "<a@example.test>", "<@r1.test,@r2.test:u@dest.test>", "250", "250", "u@dest.test", false},
		{"literal refused", "<a@example.test>", "<u@[192.0.2.1]>", "250", "553 5.1.3", "", false},
		{"literal sender refused", "<a@[192.0.2.1]>", "", "553 5.1.3", "", "", false},
		{"literal allowed", "<a@example.test>", "<u@[192.0.2.1]>", "250", "250", "u@[192.0.2.1]", true},
		{"bad domain", "<a@example.test>", "<u@-bad.test>", "250", "553 5.1.3", "", false},
		{"utf8 without SMTPUTF8", "<a@example.test>", "<jöran@dest.test>", "250", "553 5.6.7", "", false},
		{"utf8 with SMTPUTF8", "<a@example.test> SMTPUTF8", "<jöran@dest.test>", "250", "250", "jöran@dest.test", false},
		{"suppressed", "<a@example.test>", "<gone@dest.test>", "250", "550 5.1.1", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, _, st := startServer(t, Options{
				AllowAddressLiterals: tt.literals,
				Suppressed:           func(a string) bool { return a == "gone@dest.test" },
			})
			c := dial(t, addr)
			c.hello()
			c.cmd("MAIL FROM:"+tt.mail, tt.mailReply)
			if tt.rcpt == "" {
				return
			}
			r := c.cmd("RCPT TO:"+tt.rcpt, tt.rcptReply)
			if strings.Contains(r, "suppression") != (tt.name == "suppressed") {
				t.Errorf("reply %q", r)
			}
			if tt.stored == "" {
				return
			}
			c.cmd("DATA", "354")
			c.send(simpleMsg + ".\r\n")
			c.expect("250")
			if got := st.all()[0].Rcpts[0]; got != tt.stored {
				t.Errorf("stored rcpt %q, want %q", got, tt.stored)
			}
			if from, _ := mailbox.Canonical(strings.Trim(strings.Fields(tt.mail)[0], "<>")); st.all()[0].From != from {
				t.Errorf("stored sender %q, want %q", st.all()[0].From, from)
			}
			if strings.Contains(tt.mail, "SMTPUTF8") != st.all()[0].SMTPUTF8 {
				t.Errorf("SMTPUTF8 flag %v", st.all()[0].SMTPUTF8)
			}
		})
	}
}

func TestInboundLimits(t *testing.T) {
	t.Parallel()
	addr, _, st := startServer(t, Options{MaxRecipients: 2, MaxMessageSize: 1000})
	c := dial(t, addr)
	c.hello()
	c.cmd("MAIL FROM:<a@example.test> SIZE=5000", "552 5.3.4")
	c.cmd("MAIL FROM:<a@example.test>", "250")
	c.cmd("RCPT TO:<b1@dest.test>", "250")
	c.cmd("RCPT TO:<b2@dest.test>", "250")
	c.cmd("RCPT TO:<b3@dest.test>", "452 4.5.3")
	c.cmd("DATA", "354")
	// Oversized: one 552 after the real end, and the session goes on.
	c.send("Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 100) + "MAIL FROM:<evil@x.test>\r\n.\r\n")
	c.expect("552 5.3.4")
	c.cmd("NOOP", "250")
	if n := len(st.all()); n != 0 {
		t.Fatalf("stored %d messages", n)
	}
}

func TestInboundLineLength(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		line int // bytes including CRLF
		want string
	}{
		{"2000 bytes", 2000, "250"},
		{"2001 bytes", 2001, "500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, _, _ := startServer(t, Options{})
			c := dial(t, addr)
			c.hello()
			r := c.sendMessage("a@example.test", "b@dest.test", "Subject: x\r\n\r\n"+strings.Repeat("x", tt.line-2)+"\r\n")
			if !strings.HasPrefix(r, tt.want) {
				t.Fatalf("reply %q, want %s", r, tt.want)
			}
			if tt.want == "500" {
				c.expectClosed()
			}
		})
	}
}

func TestInboundStoreAndCheckErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		storeErr error
		checkErr error
		want     string
	}{
		{"no space", fmt.Errorf("bbolt: %w", queue.ErrNoSpace), nil, "452 4.3.1 Insufficient system storage"},
		{"other store error", errors.New("disk on fire"), nil, "451 4.3.0 Temporary local problem"},
		// A read-only data dir is a local problem, not a full disk (issue 9 item 10).
		{"read-only store", fmt.Errorf("commit: %w: read-only file system", queue.ErrUnwritable), nil, "451 4.3.0 Temporary local problem"},
		{"check smtp error wrapped", nil, fmt.Errorf("dmarc: %w", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 26}, Message: "unauthenticated"}), "550 5.7.26 unauthenticated"},
		{"check other error", nil, errors.New("dns down"), "451 4.3.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := &fakeStore{fail: tt.storeErr}
			o := Options{Store: st}
			if tt.checkErr != nil {
				o.Check = checkFunc(func(context.Context, *Message) error { return tt.checkErr })
			}
			addr, _, _ := startServer(t, o)
			c := dial(t, addr)
			c.hello()
			r := c.sendMessage("a@example.test", "b@dest.test", simpleMsg)
			if !strings.HasPrefix(r, tt.want) {
				t.Fatalf("reply %q, want %q", r, tt.want)
			}
			if strings.Contains(r, "disk") || strings.Contains(r, "dns") || strings.Contains(r, "bbolt") {
				t.Errorf("internal detail leaked: %q", r)
			}
			c.cmd("NOOP", "250")
		})
	}
}

type checkFunc func(context.Context, *Message) error

func (f checkFunc) Check(ctx context.Context, m *Message) error { return f(ctx, m) }

func TestInboundCheckerMayReplaceBody(t *testing.T) {
	t.Parallel()
	addr, _, st := startServer(t, Options{Check: checkFunc(func(_ context.Context, m *Message) error {
		m.Prepend = []byte("DKIM-Signature: v=1\r\n")
		return nil
	})})
	c := dial(t, addr)
	c.hello()
	c.sendMessage("a@example.test", "b@dest.test", simpleMsg)
	if b := string(st.all()[0].Body); !strings.HasPrefix(b, "DKIM-Signature: v=1\r\nReceived: ") {
		t.Errorf("body %q", b)
	}
}

func TestInboundLoop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		hops int
		want string
	}{{30, "250"}, {31, "554 5.4.6"}}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.hops), func(t *testing.T) {
			t.Parallel()
			addr, _, _ := startServer(t, Options{})
			c := dial(t, addr)
			c.hello()
			msg := strings.Repeat("Received: from x by y; Tue, 24 Nov 2026 10:00:00 +0000\r\n", tt.hops) + simpleMsg
			if r := c.sendMessage("a@example.test", "b@dest.test", msg); !strings.HasPrefix(r, tt.want) {
				t.Fatalf("reply %q, want %s", r, tt.want)
			}
		})
	}
}

func TestInboundHTTPRequestClosed(t *testing.T) {
	t.Parallel()
	for _, line := range []string{"GET / HTTP/1.1", "POST /x HTTP/1.0", "HEAD / HTTP/1.1", "CONNECT mx:25 HTTP/1.1"} {
		t.Run(line, func(t *testing.T) {
			t.Parallel()
			addr, _, _ := startServer(t, Options{})
			c := dial(t, addr)
			c.expect("220")
			c.send(line + "\r\nHost: x\r\n\r\n")
			c.expect("5")
			c.expectClosed()
		})
	}
}

func TestInboundRequiresEHLOAgainAfterMailSequence(t *testing.T) {
	t.Parallel()
	addr, _, _ := startServer(t, Options{})
	c := dial(t, addr)
	c.hello()
	c.cmd("RCPT TO:<b@dest.test>", "5")
	c.cmd("DATA", "5")
}

func TestNewValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		o    Options
	}{
		{"no hostname", func() Options { o := testOptions(Options{}); o.Hostname = ""; return o }()},
		{"no store", func() Options { o := testOptions(Options{}); o.Store = nil; return o }()},
		{"implicit tls without config", testOptions(Options{ImplicitTLS: true})},
		{"user without hash", testOptions(Options{Users: []User{{Name: "u"}}})},
		{"rate without burst", testOptions(Options{PerClientRate: 1})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(tt.o); err == nil {
				t.Fatal("want error")
			}
		})
	}
}

// TestInboundZeroOptionIsNotReplaced: New fills nothing in (issue
// 9 item 21): a zero size, count, timeout or AUTH budget is refused; a
// zero connection limit means no limit and stays zero.
func TestInboundZeroOptionIsNotReplaced(t *testing.T) {
	t.Parallel()
	full := testOptions(Options{})
	if _, err := New(full); err != nil {
		t.Fatalf("options from the default config refused: %v", err)
	}
	for _, field := range []string{"MaxMessageSize", "MaxRecipients", "MaxLineLength", "ReadTimeout", "WriteTimeout", "IdleTimeout", "DataTimeout", "AuthFailures"} {
		o := full
		reflect.ValueOf(&o).Elem().FieldByName(field).SetZero()
		if _, err := New(o); err == nil {
			t.Errorf("%s = 0 accepted (and would have been replaced by a default)", field)
		}
	}
	for _, field := range []string{"MaxConnections", "PerClientConnections", "PerClientRate", "PerClientBurst", "InFlight"} {
		o := full
		reflect.ValueOf(&o).Elem().FieldByName(field).SetZero()
		s, err := New(o)
		if err != nil {
			t.Errorf("%s = 0 refused: %v", field, err)
			continue
		}
		if v := reflect.ValueOf(s.gen.o).FieldByName(field); !v.IsZero() {
			t.Errorf("%s = 0 became %v", field, v)
		}
	}
}

func TestInboundHELOAndSTARTTLSUnavailable(t *testing.T) {
	t.Parallel()
	addr, _, st := startServer(t, Options{})
	c := dial(t, addr)
	c.expect("220")
	if r := c.cmd("HELO old.test", "250 "); !strings.HasPrefix(r, "250 "+testHost+" Hello old.test") {
		t.Errorf("HELO reply %q", r)
	}
	c.cmd("STARTTLS", "502")
	c.cmd("AUTH PLAIN "+plain("a", "b"), "523")
	if r := c.sendMessage("a@example.test", "b@dest.test", simpleMsg); !strings.HasPrefix(r, "250") {
		t.Fatal(r)
	}
	if b := string(st.all()[0].Body); !strings.Contains(b, "from old.test ([127.0.0.1])\r\n\tby "+testHost+" with SMTP id ") {
		t.Errorf("body %q", b)
	}
}

func TestInboundSecondSTARTTLSRefused(t *testing.T) {
	t.Parallel()
	cfg, pool := testTLS(t)
	addr, _, _ := startServer(t, Options{TLSConfig: cfg})
	c := dial(t, addr)
	c.hello()
	c.startTLS(pool)
	// RFC 3207 §4: a second STARTTLS is a bad sequence (503), not an
	// unsupported command (502).
	if r := c.cmd("STARTTLS", "503"); r != "503 5.5.1 TLS already active\r\n" {
		t.Errorf("second STARTTLS: %q", r)
	}
	c.cmd("NOOP", "250")
}
