// Package auth makes sure that what leaves sluice will authenticate at the
// receiver. At acceptance it signs the message with DKIM (RFC 6376, with
// RSA-2048 and Ed25519 per RFC 8463), checks SPF (RFC 7208) of the envelope
// domain against the relay's outbound addresses, verifies signatures the
// application already added, and decides whether the message will pass DMARC
// (RFC 7489) at the receiver. It also enforces each authenticated user's
// allowed sender domains.
//
// Promises:
//   - A Checker is safe for concurrent use by many SMTP sessions.
//   - Every DNS lookup goes through Options.Resolver with a timeout; results
//     are cached (by the resolver itself when it caches by TTL), and a
//     resolver that times out is skipped for a cooldown, so a slow resolver
//     never holds the SMTP reply for long.
//   - A DNS temporary error never causes a permanent refusal: warn mode
//     accepts, enforce mode answers 451 4.4.3 so the client retries.
//   - Errors returned by Check are bare *smtp.SMTPError values, as the
//     go-smtp server recognises codes only by type assertion.
package auth

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"sluice/config"
	"sluice/internal/warngate"
)

// Modes of the acceptance checks (config key auth.mode).
const (
	ModeOff     = "off"
	ModeWarn    = "warn"
	ModeEnforce = "enforce"
)

// Options configures a Checker. They are complete: New fills in nothing but
// the seams (Resolver, Now, Logger) and refuses zero durations; the
// defaults live in the config layer (OptionsFrom).
type Options struct {
	Mode        string       // off | warn | enforce
	OutboundIPs []netip.Addr // our sending addresses, judged by SPF
	Keys        []KeyConfig  // from [[auth.dkim]]
	// Users maps an authenticated user name to its allowed_from domains.
	// A missing or empty list allows any domain.
	Users      map[string][]string
	DNSTimeout time.Duration // per lookup
	// CacheTTL is how long SPF verdicts are cached, and DNS answers (and
	// NXDOMAIN) when the Resolver does not cache by the records' own TTLs
	// (net.Resolver, test fakes); the daemon's resolver.Compat does, and
	// its answers are not cached again here.
	CacheTTL         time.Duration
	ResolverCooldown time.Duration // skip DNS this long after a timeout
	// Counters receive the outcome counters (Verdicts); share one between
	// the checkers a config reload replaces, so that the exported
	// counters never go back. nil = the checker's own.
	Counters *Counters
	Resolver Resolver         // nil = net.DefaultResolver
	Now      func() time.Time // nil = time.Now
	Logger   *slog.Logger     // nil = slog.Default()
}

// KeyConfig is one [[auth.dkim]] entry.
type KeyConfig struct {
	Domain   string
	Selector string
	KeyFile  string
	// Subdomains lets this key sign mail From any subdomain of Domain. The
	// signature stays aligned under relaxed DKIM alignment (RFC 7489 §3.1.1)
	// because both share the organisational domain.
	Subdomains bool
}

// Resolver is the DNS seam. *net.Resolver satisfies it, and so does
// blitiri.com.ar/go/spf's DNSResolver, so the same value serves both.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Checker runs the acceptance checks and signs messages.
type Checker struct {
	mode    string
	ips     []netip.Addr
	assumed bool // ips were guessed from the host's interfaces
	keys    []signingKey
	users   map[string][]string
	dns     *dnsCache
	spf     *spfCache
	now     func() time.Time
	log     *slog.Logger

	verdicts *Counters
	warns    *warngate.Gate // warn mode logs a domain once a minute
}

// Counters are outcome counters by name, safe for concurrent use.
type Counters struct {
	mu sync.Mutex
	m  map[string]uint64
}

// NewCounters returns empty counters.
func NewCounters() *Counters { return &Counters{m: map[string]uint64{}} }

func (c *Counters) add(name string) {
	c.mu.Lock()
	c.m[name]++
	c.mu.Unlock()
}

// Snapshot returns a copy of the counters.
func (c *Counters) Snapshot() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

type signingKey struct {
	KeyConfig
	signer crypto.Signer
	algo   string // "rsa" or "ed25519"
}

// New validates the options and loads the key files.
func New(o Options) (*Checker, error) {
	// Nothing is filled in but the seams: the defaults live in the config
	// layer (OptionsFrom).
	if o.DNSTimeout <= 0 || o.CacheTTL <= 0 || o.ResolverCooldown <= 0 {
		return nil, errors.New("auth: DNSTimeout, CacheTTL and ResolverCooldown must be positive")
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch o.Mode {
	case ModeOff, ModeWarn, ModeEnforce:
	default:
		return nil, fmt.Errorf("auth: mode %q: want off, warn or enforce", o.Mode)
	}
	// SPF cannot be judged on a guessed address: refusing on a guess would
	// bounce good mail, so enforce needs the real outbound addresses.
	if o.Mode == ModeEnforce && len(o.OutboundIPs) == 0 {
		return nil, errors.New("auth: mode enforce needs delivery.outbound_ips: SPF cannot be judged on a guessed address")
	}
	c := &Checker{
		mode:     o.Mode,
		ips:      o.OutboundIPs,
		users:    o.Users,
		now:      o.Now,
		log:      o.Logger,
		verdicts: o.Counters,
		warns:    warngate.New(warnEvery),
	}
	if c.verdicts == nil {
		c.verdicts = NewCounters()
	}
	if len(c.ips) == 0 {
		c.ips = assumeOutboundIPs()
		c.assumed = true
	}
	for _, kc := range o.Keys {
		k, err := loadKey(kc)
		if err != nil {
			return nil, err
		}
		if err := checkKeyStrength(k); err != nil {
			return nil, err
		}
		c.keys = append(c.keys, k)
	}
	c.dns = newDNSCache(o.Resolver, o.DNSTimeout, o.CacheTTL, o.ResolverCooldown, o.Now)
	c.spf = newSPFCache(c.dns, o.CacheTTL, o.Now)
	return c, nil
}

// OptionsFrom maps the config onto Options: [auth], the outbound
// addresses and the users' allowed sender domains. The caller adds Logger
// (and Resolver in tests and tools).
func OptionsFrom(cfg *config.Config) Options {
	a := cfg.Auth
	o := Options{
		Mode:             a.Mode,
		OutboundIPs:      cfg.Delivery.OutboundAddrs(),
		Users:            map[string][]string{},
		DNSTimeout:       time.Duration(a.DNSTimeout),
		CacheTTL:         time.Duration(a.CacheTTL),
		ResolverCooldown: time.Duration(a.ResolverCooldown),
	}
	for _, k := range a.DKIM {
		o.Keys = append(o.Keys, KeyConfig{Domain: k.Domain, Selector: k.Selector, KeyFile: k.KeyFile, Subdomains: k.Subdomains})
	}
	for _, u := range cfg.Access.Users {
		o.Users[u.Name] = u.AllowedFrom
	}
	return o
}

// assumeOutboundIPs picks the first global unicast, non-private address of
// this host, the best guess of what receivers will see. It returns nil when
// there is none (e.g. behind NAT); the verdict then says "none known".
func assumeOutboundIPs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var private []netip.Addr
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := pfx.Addr().Unmap()
		if !ip.IsGlobalUnicast() {
			continue
		}
		if ip.IsPrivate() {
			private = append(private, ip)
			continue
		}
		return []netip.Addr{ip}
	}
	if len(private) > 0 {
		return private[:1]
	}
	return nil
}

// count adds one to a named verdict counter.
func (c *Checker) count(name string) { c.verdicts.add(name) }

// Verdicts returns a snapshot of the outcome counters, for the lead to export
// as a Prometheus counter vector (label "outcome"). Keys: pass, warn, reject,
// tempfail, tempfail_accepted, denied_from, signed, unsigned, off.
func (c *Checker) Verdicts() map[string]uint64 { return c.verdicts.Snapshot() }

// OutboundIPs reports the addresses the SPF check judges and whether they
// were assumed from the host's interfaces rather than configured.
func (c *Checker) OutboundIPs() (ips []netip.Addr, assumed bool) {
	return append([]netip.Addr(nil), c.ips...), c.assumed
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
