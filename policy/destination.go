package policy

import (
	"slices"
	"strings"
	"time"

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

// Grouping freshness. The policy owns the domain → destination map (the
// scheduler asks DestinationOf before it looks MX hosts up again).
const (
	groupTTL     = 10 * time.Minute // a grouping from an MX lookup holds this long
	groupFailTTL = time.Minute      // after a failed lookup, ask again this soon
)

// grouping is the destination of one recipient domain. An expired
// grouping is no longer fresh (DestinationOf misses) but still names the
// domain's destination until a lookup replaces it: a DNS failure must not
// move a domain out of its provider's limits.
type grouping struct {
	dest    string
	expires time.Time
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

// Destination names the unit of throttling for a recipient domain with
// these MX hosts; it records nothing (Group does). group_by "domain": the
// lowercased domain. group_by "mx": the provider name when any MX host
// has a provider suffix (config providers first), else the lowercased
// domain. mxHosts may be nil (routes).
func (p *Policy) Destination(domain string, mxHosts []string) string {
	d := normHost(domain)
	if p.o.GroupBy != "mx" {
		return d
	}
	for _, prov := range p.providers {
		for _, h := range mxHosts {
			h = normHost(h)
			for _, s := range prov.Suffixes {
				if hasSuffix(h, s) {
					return prov.Name
				}
			}
		}
	}
	return d
}

// DestinationOf returns the destination of domain when a fresh grouping
// is known (recorded by Group less than its lifetime ago).
func (p *Policy) DestinationOf(domain string) (string, bool) {
	d := normHost(domain)
	now := p.o.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	g, ok := p.domains.Get(d)
	if !ok || !now.Before(g.expires) {
		return "", false
	}
	p.domains.Touch(d, now)
	return g.dest, true
}

// Group records the destination of domain from an MX lookup (mxHosts nil
// for a route or the smarthost) and returns it; the grouping is fresh for
// ten minutes. When the lookup failed (lookupErr != nil) the domain keeps
// its last known destination, or is its own when none is known, and is
// looked up again after a minute.
//
// When domain has a [[policy.destination]] override, the override applies
// to the whole destination the domain is grouped into (see configLimits),
// from the moment the grouping is known, and the membership is saved with
// that destination's state so that it holds after a restart before the
// domain is looked up again.
func (p *Policy) Group(domain string, mxHosts []string, lookupErr error) string {
	d := normHost(domain)
	now := p.o.Now()
	name, ttl := p.Destination(d, mxHosts), groupTTL
	var saves []*pendingSave
	p.mu.Lock()
	old, known := p.domains.Get(d)
	if lookupErr != nil {
		ttl = groupFailTTL
		if known {
			name = old.dest
		}
	}
	p.domains.Put(d, grouping{dest: name, expires: now.Add(ttl)}, now)
	if _, ok := p.overrides[d]; ok && (!known || old.dest != name) {
		changed := []string{name}
		if known {
			changed = append(changed, old.dest)
		}
		for _, n := range changed {
			dd := p.get(n)
			p.reconfigure(dd, now)
			saves = append(saves, p.snapshotForSave(dd))
		}
	}
	p.mu.Unlock()
	for _, s := range saves {
		p.save(s)
	}
	p.Sweep()
	return name
}

// OverrideDomains lists the [[policy.destination]] matches that may be
// domains grouped into a provider's destination (group_by "mx"): looking
// them up at start-up applies their overrides from the first message.
func (p *Policy) OverrideDomains() []string {
	if p.o.GroupBy != "mx" {
		return nil
	}
	p.mu.Lock() // Reconfigure replaces the overrides
	defer p.mu.Unlock()
	var out []string
	for _, m := range p.overrideMatches {
		if !slices.ContainsFunc(p.providers, func(pr Provider) bool { return pr.Name == m }) {
			out = append(out, m)
		}
	}
	return out
}

// configLimits are the configured maxima of destination name: the global
// limits, overridden by [[policy.destination]] entries. Rule, the same
// whatever order domains are seen in:
//   - an override whose match is the destination's own name (a provider
//     name, or a domain that is its own destination) wins for each limit
//     it sets;
//   - otherwise the overrides of the domains grouped into the destination
//     apply to all of it, the most restrictive value per limit when
//     several do (the smallest max_concurrency, the smallest rate).
//
// Caller holds p.mu.
func (p *Policy) configLimits(name string) (int, rate.Limit) {
	conc, r := p.o.MaxConcurrency, p.o.Rate
	var dc int
	var dr rate.Limit
	for _, m := range p.members(name) {
		o := p.overrides[m]
		if o.MaxConcurrency > 0 && (dc == 0 || o.MaxConcurrency < dc) {
			dc = o.MaxConcurrency
		}
		if o.Rate > 0 && (dr == 0 || o.Rate < dr) {
			dr = o.Rate
		}
	}
	own := p.overrides[name]
	switch {
	case own.MaxConcurrency > 0:
		conc = own.MaxConcurrency
	case dc > 0:
		conc = dc
	}
	switch {
	case own.Rate > 0:
		r = own.Rate
	case dr > 0:
		r = dr
	}
	return conc, r
}

// members lists, sorted, the override domains other than name itself
// that are grouped into destination name. Caller holds p.mu.
func (p *Policy) members(name string) []string {
	var out []string
	for _, m := range p.overrideMatches {
		if g, ok := p.domains.Get(m); ok && m != name && g.dest == name {
			out = append(out, m)
		}
	}
	return out
}

// reconfigure applies the configured maxima again after the domains
// grouped into d changed; current levels above them come down at once.
// Caller holds p.mu.
func (p *Policy) reconfigure(d *dest, now time.Time) {
	d.cfgConc, d.cfgRate = p.configLimits(d.name)
	p.clamp(d, now)
}
