package policy

import (
	"strings"

	"golang.org/x/time/rate"
)

// Provider groups the MX hosts of one mailbox provider: with
// group_by = "mx", every domain whose MX hosts end in one of Suffixes
// shares one destination named Name (design §4).
type Provider struct {
	Name     string
	Suffixes []string // MX host suffixes, e.g. ".google.com"
}

// DestinationOptions are per-destination limits from the config.
type DestinationOptions struct {
	Match          string // a domain or a provider name
	MaxConcurrency int
	Rate           rate.Limit
}

// builtinProviders is the suffix table of the big mailbox providers.
var builtinProviders = []Provider{
	{Name: "google", Suffixes: []string{".google.com", ".googlemail.com"}},
	{Name: "microsoft", Suffixes: []string{".outlook.com", ".hotmail.com", ".outlook.office365.com"}},
	{Name: "yahoo", Suffixes: []string{".yahoodns.net", ".yahoo.com", ".aol.com"}},
	{Name: "icloud", Suffixes: []string{".icloud.com", ".me.com"}},
	{Name: "comcast", Suffixes: []string{".comcast.net"}},
	{Name: "gmx", Suffixes: []string{".gmx.net", ".gmx.com", ".web.de"}},
	{Name: "orange", Suffixes: []string{".orange.fr", ".wanadoo.fr"}},
	{Name: "mailru", Suffixes: []string{".mail.ru"}},
	{Name: "qq", Suffixes: []string{".qq.com"}},
	{Name: "163", Suffixes: []string{".163.com", ".netease.com", ".126.com"}},
}

func normHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

func hasSuffix(host, suffix string) bool {
	s := normHost(suffix)
	if s == "" {
		return false
	}
	if !strings.HasPrefix(s, ".") {
		s = "." + s
	}
	return strings.HasSuffix(host, s) || host == s[1:]
}

// Destination names the unit of throttling for a recipient domain.
// group_by "domain": the lowercased domain. group_by "mx": the provider
// name when any MX host has a provider suffix (config providers first),
// else the lowercased domain. mxHosts may be nil (routes).
func (p *Policy) Destination(domain string, mxHosts []string) string {
	d := normHost(domain)
	name := d
	if p.o.GroupBy == "mx" {
	find:
		for _, prov := range p.providers {
			for _, h := range mxHosts {
				h = normHost(h)
				for _, s := range prov.Suffixes {
					if hasSuffix(h, s) {
						name = prov.Name
						break find
					}
				}
			}
		}
	}
	if name != d {
		p.mu.Lock()
		if len(p.domainOf) < maxTracked {
			p.domainOf[d] = name
		}
		p.mu.Unlock()
	}
	return name
}

// destOptions finds the config options of a destination: by its name, or
// by a domain that was grouped into it.
func (p *Policy) destOptions(name string) (DestinationOptions, bool) {
	for _, o := range p.o.Destinations {
		m := normHost(o.Match)
		if m == name || p.domainOf[m] == name {
			return o, true
		}
	}
	return DestinationOptions{}, false
}
