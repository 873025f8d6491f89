package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadForSubmit: sendmail reads a config whose secrets it may not
// read, strictly all the same.
func TestLoadForSubmit(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sluice.toml")
	body := "hostname = \"mx.example\"\n[listen]\nsmtp = \"0.0.0.0:25\"\n[delivery.smarthost]\nhost = \"sh.example:587\"\nusername = \"u\"\npassword_file = \"/nonexistent/secret\"\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil {
		t.Fatal("Load read a config whose password file is missing")
	}
	c, err := LoadForSubmit(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "mx.example" || c.Listen.SMTP != "0.0.0.0:25" || c.Delivery.Smarthost.Password != "" || c.Limits.MaxMessageSize == 0 {
		t.Errorf("got hostname %q smtp %q password %q size %d", c.Hostname, c.Listen.SMTP, c.Delivery.Smarthost.Password, c.Limits.MaxMessageSize)
	}
	if err := os.WriteFile(p, []byte("[listen]\nsmpt = \"x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadForSubmit(p); err == nil || !strings.Contains(err.Error(), "smpt") {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := LoadForSubmit(filepath.Join(dir, "missing.toml")); err == nil {
		t.Error("missing file read")
	}
}
