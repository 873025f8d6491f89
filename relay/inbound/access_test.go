package inbound

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// elsewhere is a trusted network that does not contain 127.0.0.1, so that
// the loopback client counts as outside.
var elsewhere = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}

func plain(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestInboundAccess(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		networks []netip.Prefix
		require  bool
		want     string
	}{
		{"inside networks", loopback, false, "250"},
		{"outside networks", elsewhere, false, "530 5.7.0 Authentication required"},
		{"no networks", []netip.Prefix{}, false, "530 5.7.0"},
		{"require auth even inside", loopback, true, "530 5.7.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, _, _ := startServer(t, Options{Networks: tt.networks, RequireAuth: tt.require})
			c := dial(t, addr)
			c.hello()
			c.cmd("MAIL FROM:<a@example.test>", tt.want)
			if tt.want != "250" {
				c.cmd("RCPT TO:<b@dest.test>", "5")
				c.cmd("DATA", "5")
			}
		})
	}
}

func TestInboundAuthBeforeTLS(t *testing.T) {
	t.Parallel()
	cfg, _ := testTLS(t)
	addr, _, _ := startServer(t, Options{Networks: elsewhere, TLSConfig: cfg, Users: []User{testUser(t, "app", "secret")}})
	c := dial(t, addr)
	ehlo := c.hello()
	if !strings.Contains(ehlo, "STARTTLS") || strings.Contains(ehlo, "AUTH") {
		t.Fatalf("EHLO before TLS:\n%s", ehlo)
	}
	c.cmd("AUTH PLAIN "+plain("app", "secret"), "523 5.7.10")
	c.cmd("AUTH LOGIN", "523 5.7.10")
	c.cmd("MAIL FROM:<a@example.test>", "530 5.7.0")
}

func TestInboundAuthOverSTARTTLS(t *testing.T) {
	t.Parallel()
	cfg, pool := testTLS(t)
	tests := []struct {
		name  string
		login func(c *client)
	}{
		{"plain", func(c *client) { c.cmd("AUTH PLAIN "+plain("app", "secret"), "235") }},
		{"plain with separate response", func(c *client) {
			c.cmd("AUTH PLAIN", "334")
			c.cmd(plain("app", "secret"), "235")
		}},
		{"login", func(c *client) {
			if r := c.cmd("AUTH LOGIN", "334"); !strings.Contains(r, b64("Username:")) {
				t.Errorf("challenge %q", r)
			}
			c.cmd(b64("app"), "334")
			c.cmd(b64("secret"), "235")
		}},
		{"login with initial response", func(c *client) {
			c.cmd("AUTH LOGIN "+b64("app"), "334")
			c.cmd(b64("secret"), "235")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, _, st := startServer(t, Options{Networks: elsewhere, TLSConfig: cfg, Users: []User{testUser(t, "app", "secret", "example.test")}})
			c := dial(t, addr)
			c.hello()
			ehlo := c.startTLS(pool)
			if strings.Contains(ehlo, "STARTTLS") || !strings.Contains(ehlo, "AUTH PLAIN LOGIN") {
				t.Fatalf("EHLO after TLS:\n%s", ehlo)
			}
			c.cmd("MAIL FROM:<a@example.test>", "530")
			tt.login(c)
			c.cmd("MAIL FROM:<a@other.test>", "553 5.7.1")
			c.cmd("MAIL FROM:<>", "553 5.7.1")
			if r := c.sendMessage("a@EXAMPLE.test", "b@dest.test", simpleMsg); !strings.HasPrefix(r, "250") {
				t.Fatal(r)
			}
			m := st.all()[0]
			if m.User != "app" || !strings.Contains(string(m.Body), " with ESMTPSA id ") {
				t.Errorf("user %q body %q", m.User, m.Body)
			}
		})
	}
}

func TestInboundSTARTTLSDiscardsPipelinedPlaintext(t *testing.T) {
	t.Parallel()
	cfg, pool := testTLS(t)
	addr, _, st := startServer(t, Options{TLSConfig: cfg})
	c := dial(t, addr)
	c.hello()
	// CVE-2011-0411: commands injected after STARTTLS in the same packet.
	c.send("STARTTLS\r\nMAIL FROM:<evil@example.test>\r\n")
	c.expect("220")
	tc := tls.Client(c.conn, &tls.Config{RootCAs: pool, ServerName: testHost})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	// The injected MAIL must not have started a transaction, and MAIL
	// needs a fresh EHLO first.
	c.cmd("MAIL FROM:<a@example.test>", "503")
	c.cmd("AUTH PLAIN "+plain("app", "secret"), "503")
	c.cmd("EHLO client.test", "250")
	c.cmd("RCPT TO:<b@dest.test>", "5")
	if r := c.sendMessage("a@example.test", "b@dest.test", simpleMsg); !strings.HasPrefix(r, "250") {
		t.Fatal(r)
	}
	if b := string(st.all()[0].Body); !strings.Contains(b, " with ESMTPS id ") {
		t.Errorf("body %q", b)
	}
}

func TestInboundAuthFailuresThrottled(t *testing.T) {
	t.Parallel()
	cfg, pool := testTLS(t)
	clock := newClock()
	clock.Set(time.Unix(1e9, 0))
	const failures = 5
	addr, _, _ := startServer(t, Options{TLSConfig: cfg, Now: clock.Now, AuthFailures: failures, Users: []User{testUser(t, "app", "secret")}})
	c := dial(t, addr)
	c.hello()
	c.startTLS(pool)
	for range failures {
		c.cmd("AUTH PLAIN "+plain("app", "wrong"), "535 5.7.8")
	}
	c.cmd("AUTH PLAIN "+plain("app", "wrong"), "421 4.7.0")
	c.expectClosed()
	// The budget is per client IP: a new connection is still throttled
	// until the clock moves on.
	c2 := dial(t, addr)
	c2.hello()
	c2.startTLS(pool)
	c2.cmd("AUTH PLAIN "+plain("nobody", "x"), "421 4.7.0")
	// Even the right password gets no verdict while the IP is throttled.
	c4 := dial(t, addr)
	c4.hello()
	c4.startTLS(pool)
	c4.cmd("AUTH PLAIN "+plain("app", "secret"), "421 4.7.0")
	clock.Advance(authFailWindow / failures)
	c3 := dial(t, addr)
	c3.hello()
	c3.startTLS(pool)
	c3.cmd("AUTH PLAIN "+plain("app", "secret"), "235")
}

func TestInboundImplicitTLS(t *testing.T) {
	t.Parallel()
	cfg, pool := testTLS(t)
	st := &fakeStore{}
	s, err := New(testOptions(Options{Store: st, TLSConfig: cfg, ImplicitTLS: true, RequireAuth: true, Users: []User{testUser(t, "app", "secret")}}))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	conn, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: testHost})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	ehlo := c.hello()
	if strings.Contains(ehlo, "STARTTLS") || !strings.Contains(ehlo, "AUTH PLAIN LOGIN") {
		t.Fatalf("EHLO:\n%s", ehlo)
	}
	c.cmd("MAIL FROM:<a@example.test>", "530")
	if r := c.cmd("STARTTLS", "503"); r != "503 5.5.1 TLS already active\r\n" {
		t.Errorf("STARTTLS under implicit TLS: %q", r)
	}
	c.cmd("AUTH PLAIN "+plain("app", "secret"), "235")
	if r := c.sendMessage("a@example.test", "b@dest.test", simpleMsg); !strings.HasPrefix(r, "250") {
		t.Fatal(r)
	}
	shutdown(t, s)
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestInboundMessageRate(t *testing.T) {
	t.Parallel()
	clock := newClock()
	clock.Set(time.Unix(1e9, 0))
	addr, _, _ := startServer(t, Options{Now: clock.Now, PerClientRate: rate.Every(time.Minute), PerClientBurst: 2})
	c := dial(t, addr)
	c.hello()
	for range 2 {
		c.cmd("MAIL FROM:<a@example.test>", "250")
		c.cmd("RSET", "250")
	}
	c.cmd("MAIL FROM:<a@example.test>", "450 4.7.1")
	clock.Advance(time.Minute)
	c.cmd("MAIL FROM:<a@example.test>", "250")
}
