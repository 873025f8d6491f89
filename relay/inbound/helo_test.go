package inbound

import (
	"strings"
	"testing"
)

// TestInboundHeloName: a HELO/EHLO name that could not be a domain or an
// address literal (RFC 5321 §4.1.1.1, §4.1.3), control characters above
// all, is refused with 501 5.5.4 and a generic text, and never stored;
// the names real clients send are accepted.
func TestInboundHeloName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ok   bool
	}{
		{"client.test", true},
		{"localhost", true},
		{"DESKTOP-4F2_laptop", true},
		{"192.0.2.7", true},
		{"[192.0.2.7]", true},
		{"[IPv6:2001:db8::1]", true},
		{"bücher.test", true},
		{"host.test.", true},
		{"x\x1b[2Jy", false},
		{"x\x1b]0;pwned\x07", false},
		{"a\tb", false},
		{"bad\x7f", false},
		{"bad\xffutf8", false},
		{"c1\u009b31m", false},
		{"rlo\u202e", false},
		{`"quoted"`, false},
		{"<script>", false},
		{"a;b", false},
		{"[1.2.3.4", false},
		{"[a]b]", false},
		{strings.Repeat("a", 256), false},
	}
	for _, tt := range tests {
		for _, verb := range []string{"EHLO", "HELO"} {
			t.Run(verb+" "+tt.name, func(t *testing.T) {
				t.Parallel()
				addr, _, st := startServer(t, Options{})
				c := dial(t, addr)
				c.expect("220")
				c.send(verb + " " + tt.name + "\r\n")
				r := c.reply()
				if !tt.ok {
					if r != "501 5.5.4 Syntax: EHLO hostname\r\n" {
						t.Fatalf("%s %q: %q, want 501 5.5.4", verb, tt.name, r)
					}
					// The client has not introduced itself.
					c.cmd("MAIL FROM:<a@example.test>", "503 5.5.1")
					return
				}
				if !strings.HasPrefix(r, "250") {
					t.Fatalf("%s %q: %q", verb, tt.name, r)
				}
				if r := c.sendMessage("a@example.test", "b@dest.test", simpleMsg); !strings.HasPrefix(r, "250") {
					t.Fatal(r)
				}
				if got := st.all()[0].Helo; got != tt.name {
					t.Errorf("stored helo %q, want %q", got, tt.name)
				}
			})
		}
	}
}

// TestInboundBadHeloKeepsEarlierName: a refused EHLO later in the session
// changes nothing, and after STARTTLS a refused EHLO does not count as
// the EHLO RFC 3207 §4.2 asks for.
func TestInboundBadHeloKeepsEarlierName(t *testing.T) {
	t.Parallel()
	cfg, pool := testTLS(t)
	addr, _, st := startServer(t, Options{TLSConfig: cfg})
	c := dial(t, addr)
	c.hello()
	c.cmd("EHLO evil\x1b[2J", "501 5.5.4")
	c.cmd("STARTTLS", "220")
	c.upgrade(pool)
	c.cmd("EHLO evil\x1b[2J", "501 5.5.4")
	c.cmd("MAIL FROM:<a@example.test>", "503 5.5.1 Send EHLO again after STARTTLS")
	c.cmd("EHLO good.test", "250")
	if r := c.sendMessage("a@example.test", "b@dest.test", simpleMsg); !strings.HasPrefix(r, "250") {
		t.Fatal(r)
	}
	if got := st.all()[0].Helo; got != "good.test" {
		t.Errorf("stored helo %q", got)
	}
}
