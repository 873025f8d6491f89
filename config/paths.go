package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
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
	abs(&c.Delivery.CAFile)
	if c.Events.File != "-" {
		abs(&c.Events.File)
	}
	for i := range c.Events.Webhooks {
		abs(&c.Events.Webhooks[i].SecretFile)
	}
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
	errs := c.readWebhookSecrets()
	if f := c.Delivery.CAFile; f != "" {
		// Read again at every load, as the TLS certificate is: a
		// rotated test CA takes effect at a reload.
		b, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, &Error{Key: "delivery.ca_file", Msg: fmt.Sprintf("cannot read: %v", err)})
		}
		c.Delivery.CAPEM = b
	}
	sh := &c.Delivery.Smarthost
	if sh.PasswordFile == "" {
		return errs
	}
	b, err := os.ReadFile(sh.PasswordFile)
	if err != nil {
		return append(errs, &Error{Key: "delivery.smarthost.password_file", Msg: fmt.Sprintf("cannot read: %v", err)})
	}
	// A trailing newline is an editor artefact, never part of a password.
	sh.Password = strings.TrimRight(string(b), "\r\n")
	return errs
}

// readWebhookSecrets loads the webhook signing secrets (same rules as the
// smarthost password: read at load, a trailing newline dropped).
func (c *Config) readWebhookSecrets() []*Error {
	var errs []*Error
	for i := range c.Events.Webhooks {
		w := &c.Events.Webhooks[i]
		if w.SecretFile == "" {
			continue
		}
		b, err := os.ReadFile(w.SecretFile)
		if err != nil {
			errs = append(errs, &Error{Key: idx("events.webhook", i) + ".secret_file", Msg: fmt.Sprintf("cannot read: %v", err)})
			continue
		}
		w.Secret = strings.TrimRight(string(b), "\r\n")
		if w.Secret == "" {
			errs = append(errs, &Error{Key: idx("events.webhook", i) + ".secret_file", Msg: "the file is empty: a webhook needs a signing secret"})
		}
	}
	return errs
}

// inherit fills the keys whose "" means "same as another key".
func (c *Config) inherit() {
	// One value set of TLS modes (issue 14): the aliases become their
	// modes here, so that the packages see may and encrypt only.
	dl := &c.Delivery
	dl.TLS = CanonicalTLSMode(dl.TLS)
	for i := range dl.Routes {
		dl.Routes[i].TLS = CanonicalTLSMode(dl.Routes[i].TLS)
	}
	dl.Smarthost.TLS = CanonicalTLSMode(dl.Smarthost.TLS)
	for i := range dl.TLSPolicies {
		dl.TLSPolicies[i].Mode = CanonicalTLSMode(dl.TLSPolicies[i].Mode)
		dl.TLSPolicies[i].Domain = strings.TrimSuffix(strings.ToLower(dl.TLSPolicies[i].Domain), ".")
	}
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
	if c.TLSRPT.Submitter == "" {
		c.TLSRPT.Submitter = c.TLSRPT.DefaultSubmitter()
	}
}

// webhookDefaults fills the defaults of each [[events.webhook]] entry
// (arrays of tables have no default entries to overlay), before
// validation: config.example.toml documents them.
func (c *Config) webhookDefaults() {
	for i := range c.Events.Webhooks {
		w := &c.Events.Webhooks[i]
		if w.Batch == 0 {
			w.Batch = DefaultWebhookBatch
		}
		if w.Timeout == 0 {
			w.Timeout = DefaultWebhookTimeout
		}
	}
}

// The defaults of an [[events.webhook]] entry.
const (
	DefaultWebhookBatch   = 100
	DefaultWebhookTimeout = Duration(10 * time.Second)
)
