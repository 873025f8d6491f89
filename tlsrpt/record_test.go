package tlsrpt

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"sluice/resolver"
)

func TestParseRecord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		txt  string
		want []string // rua as strings; nil = error
	}{
		// RFC 8460 §3.1's examples.
		{"v=TLSRPTv1;rua=mailto:reports@example.com", []string{"mailto:reports@example.com"}},
		{"v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt", []string{"https://reporting.example.com/v1/tlsrpt"}},
		{"v=TLSRPTv1; rua=mailto:reports@example.com,https://reporting.example.com/v1/tlsrpt",
			[]string{"mailto:reports@example.com", "https://reporting.example.com/v1/tlsrpt"}},
		{"v=TLSRPTv1 ; rua=mailto:a@example.com , mailto:b@example.com ;", []string{"mailto:a@example.com", "mailto:b@example.com"}},
		{"v=TLSRPTv1; ext_1=x; rua=mailto:a@example.com", []string{"mailto:a@example.com"}},
		{"v=TLSRPTv1;rua=MAILTO:a@example.com", []string{"mailto:a@example.com"}},
		// Unknown schemes are ignored, but one usable URI must remain.
		{"v=TLSRPTv1;rua=ftp://x.example/r,mailto:a@example.com", []string{"mailto:a@example.com"}},
		{"v=TLSRPTv1;rua=ftp://x.example/r", nil},
		{"", nil},
		{"v=TLSRPTv2;rua=mailto:a@example.com", nil},
		{"v=tlsrptv1;rua=mailto:a@example.com", nil}, // %s: case-sensitive
		{" v=TLSRPTv1;rua=mailto:a@example.com", nil},
		{"v=TLSRPTv1", nil},
		{"v=TLSRPTv1;", nil},
		{"v=TLSRPTv1 rua=mailto:a@example.com", nil},
		{"v=TLSRPTv1;rua=", nil},
		{"v=TLSRPTv1;rua=mailto:a@example.com;rua=mailto:b@example.com", nil},
		{"v=TLSRPTv1;rua=mailto:a@example.com;;", nil},
		{"v=TLSRPTv1;rua=mailto:not-an-address", nil},
		{"v=TLSRPTv1;rua=mailto:a@b@example.com", nil},
		{"v=TLSRPTv1;rua=mailto:a@example.com?subject=x", nil},
		{"v=TLSRPTv1;rua=https://", nil},
		{"v=TLSRPTv1;rua=https://user:pw@example.com/r", nil},
		{"v=TLSRPTv1;rua=mailto:a@example.com,", nil},
		{"v=TLSRPTv1;rua=mailto:a@exam ple.com", nil},
		{"v=TLSRPTv1;rua=mailto:a@example.com;bad ext=1", nil},
		{"v=TLSRPTv1;rua=mailto:a@example.com;x=", nil},
		{"v=TLSRPTv1;rua=mailto:a@example.com;_x=1", nil}, // ext-name begins with ALPHA / DIGIT
		{"v=TLSRPTv1;rua=https://r.example/a!b", nil},     // "!" must be percent-encoded
		{"v=TLSRPTv1;rua=https://r.example/a%21b", []string{"https://r.example/a%21b"}},
		{"v=TLSRPTv1;rua=mailto:a@example.com;" + strings.Repeat("x", 33) + "=1", nil},
		{"v=TLSRPTv1;rua=" + strings.TrimSuffix(strings.Repeat("mailto:a@example.com,", MaxRUA+1), ","), nil},
	}
	for _, tt := range tests {
		got, err := ParseRecord(tt.txt)
		if tt.want == nil {
			if err == nil {
				t.Errorf("ParseRecord(%q) = %v, want an error", tt.txt, got)
			} else if !errors.Is(err, ErrSyntax) {
				t.Errorf("ParseRecord(%q): %v is not ErrSyntax", tt.txt, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRecord(%q): %v", tt.txt, err)
			continue
		}
		var s []string
		for _, u := range got {
			s = append(s, u.String())
		}
		if strings.Join(s, " ") != strings.Join(tt.want, " ") {
			t.Errorf("ParseRecord(%q) = %v, want %v", tt.txt, s, tt.want)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"v=TLSRPTv1;rua=mailto:reports@example.com",
		"v=TLSRPTv1; rua=mailto:a@example.com,https://r.example.com/x?y=1",
		"v=TLSRPTv1;ext=1;rua=https://r.example",
		"v=TLSRPTv1;;",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		rua, err := ParseRecord(txt)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("%q: error %v is not ErrSyntax", txt, err)
			}
			return
		}
		if len(rua) == 0 || len(rua) > MaxRUA {
			t.Fatalf("%q: %d URIs", txt, len(rua))
		}
		for _, u := range rua {
			switch u.Scheme {
			case "mailto":
				if a := Mailbox(u); !mailbox(a) || !headerSafe(a) {
					t.Fatalf("%q: mailto %q is not a plain address", txt, a)
				}
			case "https":
				if u.Host == "" || u.User != nil {
					t.Fatalf("%q: https URI %v", txt, u)
				}
			default:
				t.Fatalf("%q: scheme %q kept", txt, u.Scheme)
			}
		}
	})
}

// txtResolver answers TXT lookups from a map; a missing name is an
// empty answer, a name mapped to nil a failed lookup.
type txtResolver map[string][]string

func (r txtResolver) Lookup(_ context.Context, name string, qtype uint16) (resolver.Answer, error) {
	if qtype != dns.TypeTXT {
		return resolver.Answer{}, errors.New("unexpected type")
	}
	recs, ok := r[name]
	if ok && recs == nil {
		return resolver.Answer{}, &resolver.Error{Name: name, Err: errors.New("SERVFAIL")}
	}
	var a resolver.Answer
	for _, s := range recs {
		a.Records = append(a.Records, &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT}, Txt: []string{s}})
	}
	return a, nil
}

func TestLookup(t *testing.T) {
	t.Parallel()
	r := txtResolver{
		"_smtp._tls.one.test":  {"v=spf1 -all", "v=TLSRPTv1;rua=mailto:r@one.test"},
		"_smtp._tls.two.test":  {"v=TLSRPTv1;rua=mailto:a@two.test", "v=TLSRPTv1;rua=mailto:b@two.test"},
		"_smtp._tls.bad.test":  {"v=TLSRPTv1;rua=gopher://x"},
		"_smtp._tls.fail.test": nil,
	}
	ctx := context.Background()
	if rua, err := Lookup(ctx, r, "one.test"); err != nil || len(rua) != 1 || Mailbox(rua[0]) != "r@one.test" {
		t.Errorf("one.test: %v %v", rua, err)
	}
	for _, d := range []string{"two.test", "none.test"} {
		if _, err := Lookup(ctx, r, d); !errors.Is(err, ErrNoRecord) {
			t.Errorf("%s: %v, want ErrNoRecord", d, err)
		}
	}
	if _, err := Lookup(ctx, r, "bad.test"); !errors.Is(err, ErrSyntax) {
		t.Errorf("bad.test: %v, want ErrSyntax", err)
	}
	var re *resolver.Error
	if _, err := Lookup(ctx, r, "fail.test"); !errors.As(err, &re) {
		t.Errorf("fail.test: %v, want the resolver's error", err)
	}
}
