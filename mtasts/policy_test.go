package mtasts

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// The policy of RFC 8461 §3.2's example.
const rfcPolicy = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n"

func TestParseRecord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		txt, id string
	}{
		{"v=STSv1; id=20160831085700Z;", "20160831085700Z"}, // RFC 8461 §3.1
		{"v=STSv1; id=20160831085700Z", "20160831085700Z"},
		{"v=STSv1;id=abc", "abc"},
		{"v=STSv1; id=abc; ext=value.1", "abc"}, // extensions are ignored
		{"v=STSv1 ;\tid=abc ;", "abc"},
		{"v=STSv1; id=" + strings.Repeat("a", 32), strings.Repeat("a", 32)},
		{"v=STSv1", ""},
		{"v=STSv1;", ""},
		{"v=STSv2; id=abc", ""},
		{"id=abc; v=STSv1", ""},
		{"v=STSv1; id=" + strings.Repeat("a", 33), ""},
		{"v=STSv1; id=ab-c", ""},
		{"v=STSv1; id=", ""},
		{"v=STSv1; id=a; id=b", ""},
		{"v=STSv1; id=a; x=y=z", ""},
		{"v=STSv1; id=a; _x=y", ""},
		{"v=STSv1; id=a;; ", ""},
	}
	for _, tt := range tests {
		id, err := ParseRecord(tt.txt)
		if tt.id == "" {
			if err == nil || !errors.Is(err, ErrSyntax) {
				t.Errorf("ParseRecord(%q) = %q, %v; want a syntax error", tt.txt, id, err)
			}
			continue
		}
		if err != nil || id != tt.id {
			t.Errorf("ParseRecord(%q) = %q, %v; want %q", tt.txt, id, err, tt.id)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy([]byte(rfcPolicy))
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != ModeEnforce || p.MaxAge != 604800*time.Second || !slices.Equal(p.MX, []string{"mail.example.com", "*.example.net", "backupmx.example.com"}) {
		t.Fatalf("policy = %+v", p)
	}
	valid := []string{
		strings.ReplaceAll(rfcPolicy, "\r\n", "\n"),    // LF alone
		strings.TrimSuffix(rfcPolicy, "\r\n"),          // no final delimiter
		"version: STSv1\nmode: none\nmax_age: 86400\n", // none needs no mx
		"version: STSv1\nmode: testing\nmx: MX.Example.COM\nmax_age: 0\n",
		"version:STSv1\nmode:\tenforce \nmx: a.b\nmax_age: 31557600\n",
		"max_age: 1\nmx: a.b\nmode: enforce\nversion: STSv1\n", // any order
		"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 60\nfuture_ext: some value here\n",
	}
	for _, s := range valid {
		if _, err := ParsePolicy([]byte(s)); err != nil {
			t.Errorf("ParsePolicy(%q): %v", s, err)
		}
	}
	// RFC 8461 §3.2: a repeated version, mode or max_age: the first one
	// counts, the others are ignored (even when they would not parse).
	dup, err := ParsePolicy([]byte("version: STSv1\nmode: testing\nversion: STSv9\nmode: enforce\nmx: a.b\nmax_age: 60\nmax_age: 99999999999\n"))
	if err != nil || dup.Mode != ModeTesting || dup.MaxAge != 60*time.Second {
		t.Errorf("repeated fields: %+v, %v; want mode testing, max_age 60", dup, err)
	}
	invalid := map[string]string{
		"no version":         "mode: enforce\nmx: a.b\nmax_age: 60\n",
		"wrong version":      "version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 60\n",
		"no mode":            "version: STSv1\nmx: a.b\nmax_age: 60\n",
		"bad mode":           "version: STSv1\nmode: Enforce\nmx: a.b\nmax_age: 60\n",
		"no max_age":         "version: STSv1\nmode: enforce\nmx: a.b\n",
		"max_age too big":    "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557601\n",
		"max_age 11 digits":  "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 00000000001\n",
		"max_age negative":   "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n",
		"no mx in enforce":   "version: STSv1\nmode: enforce\nmax_age: 60\n",
		"no mx in testing":   "version: STSv1\nmode: testing\nmax_age: 60\n",
		"second is no field": "version: STSv1\nmode: enforce\nmode\nmx: a.b\nmax_age: 60\n",
		"bad mx":             "version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 60\n",
		"inner wildcard":     "version: STSv1\nmode: enforce\nmx: a.*.b\nmax_age: 60\n",
		"bare wildcard":      "version: STSv1\nmode: enforce\nmx: *\nmax_age: 60\n",
		"not a field":        "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 60\njunk\n",
		"blank line":         "version: STSv1\n\nmode: enforce\nmx: a.b\nmax_age: 60\n",
		"stray CR":           "version: STSv1\rmode: enforce\nmx: a.b\nmax_age: 60\n",
		"control char":       "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 60\next: a\x00b\n",
		"empty ext":          "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 60\next:\n",
		"html":               "<html><body>not found</body></html>\n",
		"too big":            "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 60\next: " + strings.Repeat("x", MaxPolicySize) + "\n",
	}
	for name, s := range invalid {
		if p, err := ParsePolicy([]byte(s)); err == nil || !errors.Is(err, ErrSyntax) {
			t.Errorf("%s: ParsePolicy = %+v, %v; want a syntax error", name, p, err)
		}
	}
}

// TestMatch: RFC 8461 §4.1's reading of the mx patterns.
func TestMatch(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy([]byte(rfcPolicy))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]bool{
		"mail.example.com":      true,
		"MAIL.EXAMPLE.COM.":     true,
		"backupmx.example.com":  true,
		"mx1.example.net":       true, // "*.example.net" matches one label
		"example.net":           false,
		"a.mx1.example.net":     false, // not two
		"mail.example.com.evil": false,
		"evilmail.example.com":  false,
		"other.example.com":     false,
		".example.net":          false,
	}
	for host, want := range tests {
		if got := p.Match(host); got != want {
			t.Errorf("Match(%q) = %v, want %v", host, got, want)
		}
	}
}
