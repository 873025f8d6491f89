package resolver

import (
	"time"

	"sluice/config"
)

// The resolver's fixed knobs for a server that delivery.resolver names:
// resolv.conf's own defaults (resolv.conf(5)). They bound how long a
// lookup can take, not anything a site tunes; the servers of
// resolv.conf are asked with its own "options timeout: attempts:".
const (
	DefaultTimeout  = 5 * time.Second
	DefaultAttempts = 2
)

// OptionsFrom maps the config onto Options: the server delivery.resolver
// names, or the nameservers of resolvConf (normally ResolvConf) when it is
// empty; the TTL bounds and the number of queries in flight. The caller
// adds Now in tests.
func OptionsFrom(cfg *config.Config, resolvConf string) (Options, error) {
	d := cfg.Delivery
	uo := UpstreamOptions{Servers: []string{d.Resolver}, Timeout: DefaultTimeout, Attempts: DefaultAttempts, TrustAD: true}
	if d.Resolver == "" {
		var err error
		if uo, err = UpstreamFromResolvConf(resolvConf); err != nil {
			return Options{}, err
		}
	}
	up, err := NewUpstream(uo)
	if err != nil {
		return Options{}, err
	}
	return Options{
		Transport:  up,
		Workers:    d.ResolverConcurrency,
		MinTTL:     time.Duration(d.ResolverMinTTL),
		MaxTTL:     time.Duration(d.ResolverMaxTTL),
		MaxEntries: DefaultMaxEntries,
	}, nil
}
