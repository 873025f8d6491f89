package relay

import (
	"encoding/xml"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in            string
		local, domain string
		ok            bool
	}{
		{"a@example.test", "a", "example.test", true},
		{"first.last+tag@sub.example.test", "first.last+tag", "sub.example.test", true},
		{`"john doe"@example.test`, `"john doe"`, "example.test", true},
		{`"x@y"@example.test`, `"x@y"`, "example.test", true},
		{"u%other.test@relay.test", "u%other.test", "relay.test", true},
		{"jöran@bücher.test", "jöran", "bücher.test", true},
		{"u@[192.0.2.1]", "u", "[192.0.2.1]", true},
		{"u@[IPv6:2001:db8::1]", "u", "[IPv6:2001:db8::1]", true},
		{"u@[IPv6:::ffff:192.0.2.1]", "u", "[IPv6:::ffff:192.0.2.1]", true},
		{"a@b@c.test", "", "", false},
		{"a..b@c.test", "", "", false},
		{"a@c..test", "", "", false},
		{"a@", "", "", false},
		{"@c.test", "", "", false},
		{"a b@c.test", "", "", false},
		{"a@[192.0.2.256]", "", "", false},
		{"a@[tag:foo]", "", "", false},
		{"a@c.test\r\n", "", "", false},
		{"\xff@c.test", "", "", false},
		{strings.Repeat("a", 65) + "@c.test", "", "", false},
		{"a@" + strings.Repeat("b", 64) + ".test", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			local, domain, err := ParseAddress(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrAddressSyntax) {
				t.Errorf("error %v does not wrap ErrAddressSyntax", err)
			}
			if local != tt.local || domain != tt.domain {
				t.Errorf("got %q %q", local, domain)
			}
		})
	}
}

func TestEnvelopeAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, canon string
		ok        bool
	}{
		{"a@example.test", "a@example.test", true},
		{"john doe@example.test", `"john doe"@example.test`, true},
		{`a"b\c@example.test`, `"a\"b\\c"@example.test`, true},
		{"x@y@example.test", "", false},
		{"a\x01b@example.test", "", false},
		{"a@exa mple.test", "", false},
	}
	for _, tt := range tests {
		canon, _, err := inEnvelopeAddress(tt.in)
		if (err == nil) != tt.ok || canon != tt.canon {
			t.Errorf("inEnvelopeAddress(%q) = %q, %v", tt.in, canon, err)
		}
	}
}

// isemailTest is one case of dominicsayers/isemail's tests.xml.
type isemailTest struct {
	ID        string `xml:"id,attr"`
	Address   string `xml:"address"`
	Category  string `xml:"category"`
	Diagnosis string `xml:"diagnosis"`
}

// TestParseAddressIsEmail runs the isemail torture suite. The envelope
// accepts what isemail calls valid, DNS warnings (we do no DNS here) and
// RFC 5321-only forms; CFWS, deprecated and RFC 5322-only forms and errors
// cannot appear in an SMTP path and are refused.
func TestParseAddressIsEmail(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("/work/shared/testdata/email-addresses/tests.xml")
	if err != nil {
		t.Skipf("shared test data not available: %v", err)
	}
	var suite struct {
		Tests []isemailTest `xml:"test"`
	}
	if err := xml.Unmarshal(raw, &suite); err != nil {
		t.Fatal(err)
	}
	if len(suite.Tests) < 150 {
		t.Fatalf("only %d tests parsed", len(suite.Tests))
	}
	for _, tc := range suite.Tests {
		// Control characters are stored as U+2400+n (see the file's notes).
		addr := strings.Map(func(r rune) rune {
			if r >= 0x2400 && r < 0x2420 {
				return r - 0x2400
			}
			return r
		}, tc.Address)
		want := false
		switch tc.Category {
		case "ISEMAIL_VALID_CATEGORY", "ISEMAIL_DNSWARN", "ISEMAIL_RFC5321":
			want = true
		}
		t.Run(tc.ID, func(t *testing.T) {
			t.Parallel()
			_, _, err := ParseAddress(addr)
			if (err == nil) != want {
				t.Errorf("%q (%s/%s): err = %v, want accept=%v", addr, tc.Category, tc.Diagnosis, err, want)
			}
		})
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"a@b.test", `"a b"@c.test`, "u@[IPv6:1::2]", "u@[1.2.3.4]", "a@b@c", "jöran@bücher.test", `"\"@x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		local, domain, err := ParseAddress(s)
		if err != nil {
			return
		}
		if local+"@"+domain != s {
			t.Fatalf("parts %q %q do not rebuild %q", local, domain, s)
		}
		if len(local) > inMaxLocalLen || len(domain) > inMaxDomainLen || strings.Contains(domain, "@") {
			t.Fatalf("accepted %q", s)
		}
		// What we accept must survive go-smtp's unquoting and our
		// requoting unchanged in meaning: the domain stays the same.
		if !strings.Contains(local, "@") {
			unq := strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(strings.Trim(local, `"`))
			canon, d2, err := inEnvelopeAddress(unq + "@" + domain)
			if err == nil && d2 != domain {
				t.Fatalf("%q -> %q changed domain", s, canon)
			}
		}
	})
}
