package mtasts

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// FuzzParsePolicy: the parser never panics, and what it accepts it
// accepts again once written back in canonical form, unchanged.
// Run longer with: go test -run '^$' -fuzz FuzzParsePolicy ./mtasts
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(rfcPolicy))
	f.Add([]byte("version: STSv1\nmode: none\nmax_age: 86400\n"))
	f.Add([]byte("version: STSv1\nmode: testing\nmx: *.a.b\nmax_age: 0\nx: y z\n"))
	f.Add([]byte("version:STSv1\r\nmode:enforce\r\nmx:a\r\nmax_age:1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			return
		}
		var s strings.Builder
		fmt.Fprintf(&s, "version: STSv1\nmode: %s\nmax_age: %d\n", p.Mode, int64(p.MaxAge.Seconds()))
		for _, mx := range p.MX {
			fmt.Fprintf(&s, "mx: %s\n", mx)
		}
		q, err := ParsePolicy([]byte(s.String()))
		if err != nil {
			t.Fatalf("canonical form of %q does not parse: %v\n%s", b, err, s.String())
		}
		if q.Mode != p.Mode || q.MaxAge != p.MaxAge || !slices.Equal(q.MX, p.MX) {
			t.Fatalf("round trip changed %+v into %+v", p, q)
		}
		if p.MaxAge < 0 || p.MaxAge.Seconds() > MaxAgeLimit {
			t.Fatalf("max_age %v out of range", p.MaxAge)
		}
		for _, mx := range p.MX {
			if !p.Match(strings.TrimPrefix(mx, "*.")) && !strings.HasPrefix(mx, "*.") {
				t.Fatalf("pattern %q does not match itself", mx)
			}
		}
	})
}

// FuzzParseRecord: the TXT record parser never panics and returns an id
// of 1 to 32 letters and digits or an error.
func FuzzParseRecord(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;")
	f.Add("v=STSv1;id=a;ext=b;")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseRecord(s)
		if err == nil && (len(id) < 1 || len(id) > 32 || !alnum(id)) {
			t.Fatalf("ParseRecord(%q) = %q", s, id)
		}
	})
}
