package relay

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"sluice/config"
)

// DefaultMXCacheTTL is how long an MX set and a server's STARTTLS
// behaviour are cached: not a config key; OutboundOptionsFrom sets it.
const DefaultMXCacheTTL = 5 * time.Minute

// InboundOptionsFrom maps the config onto InboundOptions, with one
// in-flight budget (share it between the listeners of a daemon). The
// caller adds the seams (Store, Check, Suppressed, OnEnqueue, OnResult,
// TLSConfig, Logger) and the listener's RequireAuth and ImplicitTLS.
func InboundOptionsFrom(cfg *config.Config) (InboundOptions, error) {
	l := cfg.Limits
	o := InboundOptions{
		Hostname:             cfg.Hostname,
		MaxMessageSize:       int64(l.MaxMessageSize),
		InFlight:             NewInFlight(int64(l.MaxInflightBytes)),
		MaxRecipients:        l.MaxRecipients,
		MaxLineLength:        l.MaxLineLength,
		ReadTimeout:          time.Duration(l.ReadTimeout),
		WriteTimeout:         time.Duration(l.WriteTimeout),
		IdleTimeout:          time.Duration(l.IdleTimeout),
		DataTimeout:          time.Duration(l.DataTimeout),
		MaxConnections:       l.MaxConnections,
		PerClientConnections: l.PerClientConnections,
		PerClientRate:        l.PerClientRate.Limit,
		PerClientBurst:       l.PerClientRate.Burst,
		AllowAddressLiterals: l.AllowAddressLiterals,
		AuthFailures:         cfg.Access.AuthFailures,
	}
	for _, n := range cfg.Access.Networks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return o, fmt.Errorf("access.networks: %w", err)
		}
		o.Networks = append(o.Networks, p)
	}
	for _, u := range cfg.Access.Users {
		o.Users = append(o.Users, User{Name: u.Name, PasswordHash: u.PasswordHash, AllowedFrom: u.AllowedFrom})
	}
	return o, nil
}

// OutboundOptionsFrom maps the config onto OutboundOptions (routes and
// smarthost with their TLS modes already resolved by the config layer).
// The caller adds Logger, and tests their seams.
func OutboundOptionsFrom(cfg *config.Config) OutboundOptions {
	dl := cfg.Delivery
	o := OutboundOptions{
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
