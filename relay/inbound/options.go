package inbound

import (
	"fmt"
	"net/netip"
	"time"

	"sluice/config"
)

// OptionsFrom maps the config onto Options, with one
// in-flight budget (share it between the listeners of a daemon). The
// caller adds the seams (Store, Check, Suppressed, OnEnqueue, OnResult,
// TLSConfig, Logger) and the listener's RequireAuth and ImplicitTLS.
func OptionsFrom(cfg *config.Config) (Options, error) {
	l := cfg.Limits
	o := Options{
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
		var token []byte
		if u.APITokenHash != "" {
			token, _ = config.ParseTokenHash(u.APITokenHash) // validated by the config layer
		}
		o.Users = append(o.Users, User{Name: u.Name, PasswordHash: u.PasswordHash, TokenHash: token, AllowedFrom: u.AllowedFrom})
	}
	return o, nil
}
