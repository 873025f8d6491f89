package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// resolvePaths makes every path-valued key absolute against base, the
// directory of the config file (design.md §3), so that the relay behaves
// the same whatever its working directory.
func (c *Config) resolvePaths(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.DataDir)
	abs(&c.Listen.AdminTokenFile)
	abs(&c.TLS.CertFile)
	abs(&c.TLS.KeyFile)
	abs(&c.Delivery.Smarthost.PasswordFile)
	for i := range c.Auth.DKIM {
		abs(&c.Auth.DKIM[i].KeyFile)
	}
	if p, ok := strings.CutPrefix(c.Listen.Admin, "unix:"); ok && p != "" {
		abs(&p)
		c.Listen.Admin = "unix:" + p
	}
}

// AdminAddress is the admin API address: listen.admin, or the socket
// "unix:<data_dir>/admin.sock" when it is empty.
func (c *Config) AdminAddress() string {
	if c.Listen.Admin != "" {
		return c.Listen.Admin
	}
	dir := c.DataDir
	if a, err := filepath.Abs(dir); err == nil {
		dir = a
	}
	return "unix:" + filepath.Join(dir, "admin.sock")
}

// readSecrets loads the smarthost password. It is read once at load so
// that a missing file stops the relay at start-up, not at first delivery.
func (c *Config) readSecrets() []*Error {
	sh := &c.Delivery.Smarthost
	if sh.PasswordFile == "" {
		return nil
	}
	b, err := os.ReadFile(sh.PasswordFile)
	if err != nil {
		return []*Error{{Key: "delivery.smarthost.password_file", Msg: fmt.Sprintf("cannot read: %v", err)}}
	}
	// A trailing newline is an editor artefact, never part of a password.
	sh.Password = strings.TrimRight(string(b), "\r\n")
	return nil
}

// inherit fills the keys whose "" means "same as another key".
func (c *Config) inherit() {
	if c.Policy.ThrottlePause == 0 {
		c.Policy.ThrottlePause = c.Policy.RetryBase
	}
	for i := range c.Delivery.Routes {
		if c.Delivery.Routes[i].TLS == "" {
			c.Delivery.Routes[i].TLS = c.Delivery.TLS
		}
	}
	if c.Delivery.Smarthost.TLS == "" {
		c.Delivery.Smarthost.TLS = c.Delivery.TLS
	}
}
