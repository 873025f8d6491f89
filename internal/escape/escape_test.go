package escape

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestText(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"app@shop.example", "app@shop.example"},
		{`"x\\@y"@example.org`, `"x\\@y"@example.org`},
		{"jöran@bücher.test 日本", "jöran@bücher.test 日本"},
		{"\x1b[2J\x1b]0;pwned\x07", `\x1b[2J\x1b]0;pwned\x07`},
		{"a\r\nb\tc", `a\r\nb\tc`},
		{"del\x7f", `del\x7f`},
		{"bad\xff\xfeutf8", `bad\xff\xfeutf8`},
		{"c1\u009b31m", `c1\u009b31m`},
		{"rlo\u202egpj.exe", `rlo\u202egpj.exe`},
		{"ls\u2028ps\u2029", `ls\u2028ps\u2029`},
		{"tag\U000E0041", `tag\U000e0041`},
	}
	for _, tt := range tests {
		if got := Text(tt.in); got != tt.want {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := Lines("a\x1b\nb\r\n"); got != "a\\x1b\nb\\r\n" {
		t.Errorf("Lines = %q", got)
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()
	in := map[string]string{"helo": "\x1b[2J\u009b\u202e\x7fok ü\U0001F600\U000E0041"}
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out := JSON(raw)
	for _, r := range string(out) {
		if r == 0x7f || r == 0x9b || r == 0x202e || r == 0xE0041 {
			t.Fatalf("raw rune %U left in %s", r, out)
		}
	}
	var back map[string]string
	if err := json.Unmarshal(out, &back); err != nil || back["helo"] != in["helo"] {
		t.Fatalf("round trip: %q, %v (%s)", back["helo"], err, out)
	}
	if !strings.Contains(string(out), "ü\U0001F600") {
		t.Errorf("printable runes escaped: %s", out)
	}
}

// FuzzText: the output is printable, one line, and leaves printable input
// unchanged.
func FuzzText(f *testing.F) {
	for _, s := range []string{"a@b", "\x1b[31m", "\xff", "\u009b", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Text(s)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 out of %q", s)
		}
		for _, r := range out {
			if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
				t.Fatalf("control %U left in %q", r, out)
			}
		}
		if Text(out) != out && !strings.Contains(s, "\\") {
			t.Fatalf("not idempotent on %q", s)
		}
		if raw, err := json.Marshal(s); err == nil {
			var back string
			if err := json.Unmarshal(JSON(raw), &back); err != nil {
				t.Fatalf("JSON broke %q: %v", s, err)
			}
		}
	})
}
