package config

import (
	"fmt"
	"slices"

	toml "github.com/pelletier/go-toml/v2"
)

const redacted = "REDACTED"

// Redacted returns a copy of c safe to log or print: the smarthost
// password is dropped and password hashes are masked (a bcrypt hash is
// still an offline-crackable secret).
func (c *Config) Redacted() *Config {
	r := *c
	r.Delivery.Smarthost.Password = ""
	r.Access.Users = slices.Clone(c.Access.Users)
	for i := range r.Access.Users {
		r.Access.Users[i].PasswordHash = redacted
	}
	r.Events.Webhooks = slices.Clone(c.Events.Webhooks)
	for i := range r.Events.Webhooks {
		r.Events.Webhooks[i].Secret = ""
	}
	return &r
}

// String renders the redacted configuration as TOML.
func (c *Config) String() string {
	b, err := toml.Marshal(c.Redacted())
	if err != nil {
		return "config: " + err.Error()
	}
	return string(b)
}

// String hides the password so that a Smarthost printed with %v or %+v
// never leaks it.
func (s Smarthost) String() string {
	pw := ""
	if s.Password != "" {
		pw = redacted
	}
	return "{host=" + s.Host + " username=" + s.Username + " password_file=" + s.PasswordFile + " password=" + pw + " tls=" + s.TLS + "}"
}

// GoString is String, for %#v.
func (s Smarthost) GoString() string { return s.String() }

// String hides the signing secret (%v, %+v).
func (w Webhook) String() string {
	sec := ""
	if w.Secret != "" {
		sec = redacted
	}
	return fmt.Sprintf("{url=%s secret_file=%s secret=%s events=%v batch=%d timeout=%s}", w.URL, w.SecretFile, sec, w.Events, w.Batch, w.Timeout)
}

// GoString is String, for %#v.
func (w Webhook) GoString() string { return w.String() }
