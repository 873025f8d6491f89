package outbound

import (
	"crypto/tls"
	"strings"
	"time"

	"sluice/config"
)

// DefaultTLSCacheTTL is how long a server's STARTTLS behaviour is
// cached: not a config key; OptionsFrom sets it. (MX and address answers
// are cached by the resolver, by their own TTLs.)
const DefaultTLSCacheTTL = 5 * time.Minute

// OptionsFrom maps the config onto Options (routes and
// smarthost with their TLS modes already resolved by the config layer).
// The caller adds the Resolver (the daemon's, shared with auth) and the
// Logger, and tests their seams.
func OptionsFrom(cfg *config.Config) Options {
	dl := cfg.Delivery
	o := Options{
		Hostname:       cfg.Hostname,
		TLS:            dl.TLS,
		Routes:         map[string]Route{},
		OutboundIPs:    dl.OutboundAddrs(),
		Port:           dl.Port,
		DialTimeout:    time.Duration(dl.DialTimeout),
		CommandTimeout: time.Duration(dl.CommandTimeout),
		DataTimeout:    time.Duration(dl.DataTimeout),
		LocalAddrs:     cfg.Listen.SMTPAddrs(),
		TLSCacheTTL:    DefaultTLSCacheTTL,
	}
	for _, r := range dl.Routes {
		o.Routes[strings.ToLower(r.Domain)] = Route{Host: r.Host, TLS: r.TLS}
	}
	if len(dl.TLSPolicies) > 0 {
		o.TLSPolicies = make(map[string]string, len(dl.TLSPolicies))
		for _, p := range dl.TLSPolicies {
			o.TLSPolicies[p.Domain] = p.Mode
		}
	}
	// Validated at load: a ca_file that does not parse never gets here.
	if pool, err := dl.RootCAs(); err == nil && pool != nil {
		o.TLSConfig = &tls.Config{RootCAs: pool}
	}
	if dl.Smarthost.Host != "" {
		o.Smarthost = &Smarthost{Host: dl.Smarthost.Host, Username: dl.Smarthost.Username, Password: dl.Smarthost.Password, TLS: dl.Smarthost.TLS}
	}
	return o
}
