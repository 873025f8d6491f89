package config

import (
	"os"
	"testing"
)

// FuzzParse checks that no document makes Parse panic, and that every
// error it returns names the file.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../config.example.toml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("[listen]\nsmpt = 1\n"))
	f.Add([]byte("[[policy.rule]]\nmatch = \"(\"\nclass = \"suspend\"\n"))
	f.Add([]byte("policy.retry_base = \"1d12h\"\nlimits.max_message_size = \"1GB\"\npolicy.rate = \"5/m\"\n"))
	f.Add([]byte("a = [{b = 1}, {c = [1, [2]]}]\n[[x.y]]\n[x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.toml", "/nonexistent")
		if err != nil {
			if len(err.Error()) < len("fuzz.toml") {
				t.Fatalf("error without file name: %v", err)
			}
			return
		}
		_ = c.String()
		_ = c.AdminAddress()
	})
}

// FuzzValues checks the value parsers never panic and that what they
// print parses back to the same value.
func FuzzValues(f *testing.F) {
	for _, s := range []string{"1d12h", "25MB", "10/m", "0.5/s", "1.5d", "1024", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := ParseDuration(s); err == nil {
			if back, err := ParseDuration(d.String()); err != nil || back != d {
				t.Fatalf("duration %q -> %q -> %v, %v", s, d, back, err)
			}
		}
		if z, err := ParseSize(s); err == nil {
			if back, err := ParseSize(z.String()); err != nil || back != z {
				t.Fatalf("size %q -> %q -> %v, %v", s, z, back, err)
			}
		}
		_, _ = ParseRate(s)
	})
}
