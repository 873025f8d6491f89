package mailbox_test

import (
	"errors"
	"strings"
	"testing"

	"sluice/mailbox"
	"sluice/mailbox/mailboxtest"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in            string
		local, domain string
		canon         string // "" = refused
	}{
		{"a@example.test", "a", "example.test", "a@example.test"},
		{"first.last+tag@sub.example.test", "first.last+tag", "sub.example.test", "first.last+tag@sub.example.test"},
		{`"john doe"@example.test`, "john doe", "example.test", `"john doe"@example.test`},
		{`"john"@example.test`, "john", "example.test", "john@example.test"},
		{`"john@doe"@example.org`, "john@doe", "example.org", `"john@doe"@example.org`},
		{`"x\\@y"@example.org`, `x\@y`, "example.org", `"x\\@y"@example.org`},
		{`"x\@y"@example.org`, "x@y", "example.org", `"x@y"@example.org`},
		{`""@example.org`, "", "example.org", `""@example.org`},
		{`"a\"b"@example.test`, `a"b`, "example.test", `"a\"b"@example.test`},
		{`"\a"@example.test`, "a", "example.test", "a@example.test"},
		{`"<>"@example.test`, "<>", "example.test", `"<>"@example.test`},
		{"u%other.test@relay.test", "u%other.test", "relay.test", "u%other.test@relay.test"},
		{"other!u@relay.test", "other!u", "relay.test", "other!u@relay.test"},
		{"jöran@bücher.test", "jöran", "bücher.test", "jöran@bücher.test"},
		{`"jö ran"@bücher.test`, "jö ran", "bücher.test", `"jö ran"@bücher.test`},
		{"u@[192.0.2.1]", "u", "[192.0.2.1]", "u@[192.0.2.1]"},
		{"u@[IPv6:2001:db8::1]", "u", "[IPv6:2001:db8::1]", "u@[IPv6:2001:db8::1]"},
		{"u@[IPv6:::ffff:192.0.2.1]", "u", "[IPv6:::ffff:192.0.2.1]", "u@[IPv6:::ffff:192.0.2.1]"},
		// Legacy dot-atoms, accepted as Postfix does and quoted on output.
		{"first..last@example.test", "first..last", "example.test", `"first..last"@example.test`},
		{"taro.@example.test", "taro.", "example.test", `"taro."@example.test`},
		{".x@example.test", ".x", "example.test", `".x"@example.test`},
		// Refused.
		{"a@b@c.test", "", "", ""},
		{"a@c..test", "", "", ""},
		{"a@", "", "", ""},
		{"@c.test", "", "", ""},
		{"a b@c.test", "", "", ""},
		{`"a"b@c.test`, "", "", ""},
		{`"unclosed@c.test`, "", "", ""},
		{"\"a\x01\"@c.test", "", "", ""},
		{"\"a\\\x01\"@c.test", "", "", ""},
		{"a@[192.0.2.256]", "", "", ""},
		{"a@[tag:foo]", "", "", ""},
		{"a@c.test\r\n", "", "", ""},
		{"\xff@c.test", "", "", ""},
		{strings.Repeat("a", 65) + "@c.test", "", "", ""},
		{"a@" + strings.Repeat("b", 64) + ".test", "", "", ""},
		{"Postmaster", "", "", ""},
		{"a@b\u202ec.test", "", "", ""},
		{"a@b\u0085c.test", "", "", ""},
		{"a@\u200bb.test", "", "", ""},
	}
	for _, tt := range tests {
		m, err := mailbox.Parse(tt.in)
		if (err == nil) != (tt.canon != "") {
			t.Errorf("mailbox.Parse(%q): err = %v, want ok=%v", tt.in, err, tt.canon != "")
			continue
		}
		if err != nil {
			if !errors.Is(err, mailbox.ErrSyntax) {
				t.Errorf("mailbox.Parse(%q): %v does not wrap mailbox.ErrSyntax", tt.in, err)
			}
			continue
		}
		if m.Local != tt.local || m.Domain != tt.domain || m.String() != tt.canon {
			t.Errorf("mailbox.Parse(%q) = %q %q canon %q, want %q %q %q", tt.in, m.Local, m.Domain, m.String(), tt.local, tt.domain, tt.canon)
		}
	}
}

func TestParsePath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, canon string
		n         int
		err       error
	}{
		{"<a@example.test>", "a@example.test", 16, nil},
		{"<a@example.test> SIZE=10", "a@example.test", 16, nil},
		{"a@example.test SIZE=10", "a@example.test", 14, nil},
		{`<"john@doe"@example.org>`, `"john@doe"@example.org`, 24, nil},
		{`<"a> b"@example.org> BODY=8BITMIME`, `"a> b"@example.org`, 20, nil},
		{`<""@example.org>`, `""@example.org`, 16, nil},
		{"<@r1.test,@r2.test:u@example.test>", "u@example.test", 34, nil},
		{"<u@[192.0.2.1]>", "u@[192.0.2.1]", 15, nil},
		{"<@[192.0.2.1]:u@example.test>", "u@example.test", 29, nil},
		{"<a@example.test", "", 0, mailbox.ErrPathSyntax},
		{"<a@example.test>x", "", 0, mailbox.ErrPathSyntax},
		{"<@r1.test:>", "", 0, mailbox.ErrSyntax},
		{"<@r1..test:a@b.test>", "", 0, mailbox.ErrPathSyntax},
		{"<@r1.test a@b.test>", "", 0, mailbox.ErrPathSyntax},
		{"<>", "", 0, mailbox.ErrSyntax},
		{"<Postmaster>", "", 0, mailbox.ErrSyntax},
		{"<a b@example.test>", "", 0, mailbox.ErrSyntax},
	}
	for _, tt := range tests {
		m, n, err := mailbox.ParsePath(tt.in)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("mailbox.ParsePath(%q): err = %v, want %v", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || m.String() != tt.canon || n != tt.n {
			t.Errorf("mailbox.ParsePath(%q) = %q, %d, %v; want %q, %d", tt.in, m.String(), n, err, tt.canon, tt.n)
		}
	}
}

func TestParseIsEmail(t *testing.T) {
	t.Parallel()
	for _, tc := range mailboxtest.IsEmailSuite(t) {
		m, err := mailbox.Parse(tc.Addr)
		if (err == nil) != tc.Valid {
			t.Errorf("#%s %q (%s): err = %v, want accept=%v", tc.ID, tc.Addr, tc.Why, err, tc.Valid)
			continue
		}
		if err != nil {
			continue
		}
		// The canonical form parses back to the same mailbox and is a
		// fixed point.
		c := m.String()
		m2, err := mailbox.Parse(c)
		if err != nil || m2 != m || m2.String() != c {
			t.Errorf("#%s %q: canonical %q reparses as %+v, %v", tc.ID, tc.Addr, c, m2, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"a@b.test", `"a b"@c.test`, `"x@y"@d.test`, `""@d.test`, `"x\\@y"@d.test`, "u@[IPv6:1::2]", "u@[1.2.3.4]", "a@b@c", "jöran@bücher.test", `"\"@x`, "a..b@c.test"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := mailbox.Parse(s)
		if err != nil {
			if !errors.Is(err, mailbox.ErrSyntax) {
				t.Fatalf("%q: error %v does not wrap mailbox.ErrSyntax", s, err)
			}
			return
		}
		// The domain is what follows the last '@' of the input.
		if at := strings.LastIndexByte(s, '@'); s[at+1:] != m.Domain || strings.Contains(m.Domain, "@") {
			t.Fatalf("%q: domain %q", s, m.Domain)
		}
		c := m.String()
		m2, err := mailbox.Parse(c)
		if err != nil || m2 != m || m2.String() != c {
			t.Fatalf("%q: canonical %q reparses as %+v, %v", s, c, m2, err)
		}
		// Nothing that could end or split a command line.
		if strings.ContainsAny(c, "\r\n\x00") {
			t.Fatalf("%q: canonical %q", s, c)
		}
		// As a path it parses back to the same mailbox.
		p, n, err := mailbox.ParsePath("<" + c + "> SIZE=1")
		if err != nil || p != m || n != len(c)+2 {
			t.Fatalf("path <%s>: %+v %d %v", c, p, n, err)
		}
	})
}
