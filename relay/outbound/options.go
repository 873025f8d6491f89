package outbound

import (
	"strings"
	"time"

	"sluice/config"
)

// DefaultMXCacheTTL is how long an MX set and a server's STARTTLS
// behaviour are cached: not a config key; OptionsFrom sets it.
const DefaultMXCacheTTL = 5 * time.Minute

// OptionsFrom maps the config onto Options (routes and
// smarthost with their TLS modes already resolved by the config layer).
// The caller adds Logger, and tests their seams.
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
		MXCacheTTL:     DefaultMXCacheTTL,
	}
	for _, r := range dl.Routes {
		o.Routes[strings.ToLower(r.Domain)] = Route{Host: r.Host, TLS: r.TLS}
	}
	if dl.Smarthost.Host != "" {
		o.Smarthost = &Smarthost{Host: dl.Smarthost.Host, Username: dl.Smarthost.Username, Password: dl.Smarthost.Password, TLS: dl.Smarthost.TLS}
	}
	return o
}
