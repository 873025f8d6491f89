// Package outbound is the client half of the relay: it delivers to the
// next hop (routes, smarthost, MX, STARTTLS, connection reuse). A *Client
// is safe for concurrent use by many delivery workers (its caches are
// mutex-guarded); a *Session it returns is one SMTP connection and is not.
// The outbound side never decides when to retry: every outcome, success or
// failure, is handed back as a reply.Reply for the caller to classify (it
// imports the wire vocabulary, never policy).
package outbound

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"sluice/internal/lru"
)

// Route sends mail for one recipient domain to a fixed host.
type Route struct {
	Host string // host:port
	TLS  string // explicit mode (the config resolves "" to delivery.tls)
}

// Smarthost receives all mail that no route matches.
type Smarthost struct {
	Host               string // host:port
	Username, Password string // AUTH PLAIN, only ever over TLS
	TLS                string // explicit mode (the config resolves "" to delivery.tls)
}

// Options configures New. They are complete: the defaults
// live in the config layer (OptionsFrom); New refuses a
// zero port, timeout or TLS mode. Only the seams have nil fallbacks.
type Options struct {
	Hostname    string           // every EHLO carries it, before and after STARTTLS
	TLS         string           // delivery.tls: none | may | encrypt | verify | dane | mta-sts (or an alias)
	Routes      map[string]Route // exact recipient-domain match (lower case)
	Smarthost   *Smarthost       // used when no route matches
	OutboundIPs []netip.Addr     // local addresses to bind (first of the right family); empty = any
	Port        int              // MX port

	DialTimeout    time.Duration
	CommandTimeout time.Duration // per command (RFC 5321 §4.5.3.2)
	DataTimeout    time.Duration // deadline for the body write and for the final reply (RFC 5321 §4.5.3.2.6)

	Resolver  Resolver                      // required: the daemon's, shared with auth
	Dialer    func(local netip.Addr) Dialer // default: *net.Dialer bound to local
	TLSConfig *tls.Config                   // base client config: RootCAs = system roots + delivery.ca_file

	// TLS policy (issue 14; see requirement for the precedence).
	TLSPolicies map[string]string // [[delivery.tls_policy]]: lower-case domain -> mode
	DANE        TLSSource         // nil = no DANE (the dane package plugs in here)
	MTASTS      TLSSource         // nil = no MTA-STS (package mtasts)
	TLSResults  *TLSResults       // outcomes per policy domain (TLS-RPT material); nil = not recorded

	LocalAddrs  []netip.AddrPort // our own listeners: a next hop resolving to one of them is a loop
	TLSCacheTTL time.Duration    // how long a server's STARTTLS behaviour is remembered: DefaultTLSCacheTTL from OptionsFrom

	Now    func() time.Time
	Logger *slog.Logger
}

// Client resolves next hops and opens sessions to them.
type Client struct {
	opt Options
	log *slog.Logger
	now func() time.Time

	// The STARTTLS cache drops entries once expired (TLSCacheTTL after
	// they were stored), on each store, at a cost per entry dropped
	// (issue 9 item 27): it holds what was seen in the last TLSCacheTTL,
	// not every address ever seen. MX and address answers are the
	// resolver's to cache, by their TTLs.
	mu       sync.Mutex
	tlsCache *lru.Map[netip.AddrPort, tlsEntry]
}

// New validates o and fills in defaults.
func New(o Options) (*Client, error) {
	if o.Hostname == "" || strings.ContainsAny(o.Hostname, " \t\r\n") {
		return nil, fmt.Errorf("relay: outbound hostname %q is not a valid EHLO name", o.Hostname)
	}
	// Nothing is filled in: the defaults live in the config layer
	// (OptionsFrom), which also resolves a route's or the
	// smarthost's "" TLS mode to delivery.tls.
	o.TLS = CanonicalTLSMode(o.TLS)
	if err := checkTLSMode(o.TLS); err != nil {
		return nil, fmt.Errorf("relay: outbound tls: %w", err)
	}
	routes := make(map[string]Route, len(o.Routes))
	for d, r := range o.Routes {
		if _, _, err := net.SplitHostPort(r.Host); err != nil {
			return nil, fmt.Errorf("relay: route for %s: %w", d, err)
		}
		r.TLS = CanonicalTLSMode(r.TLS)
		if err := checkTLSMode(r.TLS); err != nil {
			return nil, fmt.Errorf("relay: route for %s: %w", d, err)
		}
		routes[strings.ToLower(d)] = r
	}
	o.Routes = routes
	policies := make(map[string]string, len(o.TLSPolicies))
	for d, m := range o.TLSPolicies {
		m = CanonicalTLSMode(m)
		if err := checkTLSMode(m); err != nil {
			return nil, fmt.Errorf("relay: tls_policy for %s: %w", d, err)
		}
		policies[normDomain(d)] = m
	}
	o.TLSPolicies = policies
	if o.Smarthost != nil {
		sh := *o.Smarthost
		if _, _, err := net.SplitHostPort(sh.Host); err != nil {
			return nil, fmt.Errorf("relay: smarthost: %w", err)
		}
		sh.TLS = CanonicalTLSMode(sh.TLS)
		if err := checkTLSMode(sh.TLS); err != nil {
			return nil, fmt.Errorf("relay: smarthost: %w", err)
		}
		o.Smarthost = &sh
	}
	if o.Port < 1 || o.Port > 65535 {
		return nil, fmt.Errorf("relay: outbound port %d", o.Port)
	}
	if o.DialTimeout <= 0 || o.CommandTimeout <= 0 || o.DataTimeout <= 0 || o.TLSCacheTTL <= 0 {
		return nil, errors.New("relay: outbound: DialTimeout, CommandTimeout, DataTimeout and TLSCacheTTL must be positive")
	}
	if o.Resolver == nil {
		return nil, errors.New("relay: outbound: a Resolver is required")
	}
	if o.Dialer == nil {
		timeout := o.DialTimeout
		o.Dialer = func(local netip.Addr) Dialer {
			d := &net.Dialer{Timeout: timeout}
			if local.IsValid() {
				d.LocalAddr = &net.TCPAddr{IP: local.AsSlice(), Zone: local.Zone()}
			}
			return d
		}
	}
	ob := &Client{
		opt:      o,
		log:      o.Logger,
		now:      o.Now,
		tlsCache: lru.New[netip.AddrPort, tlsEntry](),
	}
	if ob.log == nil {
		ob.log = slog.Default()
	}
	if ob.now == nil {
		ob.now = time.Now
	}
	return ob, nil
}

func checkTLSMode(m string) error {
	switch m {
	case TLSNone, TLSMay, TLSEncrypt, TLSVerify, TLSDANE, TLSMTASTS:
		return nil
	}
	return fmt.Errorf("unknown TLS mode %q (want none, may, encrypt, verify, dane or mta-sts)", m)
}

// localAddr picks the first configured outbound IP of the same family as
// the destination, so that an IPv6 hop is never dialled from an IPv4 source.
func (o *Client) localAddr(dst netip.Addr) netip.Addr {
	dst = dst.Unmap()
	for _, a := range o.opt.OutboundIPs {
		if a.Unmap().Is4() == dst.Is4() {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// isLoop reports whether addr is one of our own listeners. A listener on
// the unspecified address answers on every local address; we can only
// recognise the loopback ones without enumerating interfaces.
func (o *Client) isLoop(addr netip.AddrPort) bool {
	a := addr.Addr().Unmap()
	for _, l := range o.opt.LocalAddrs {
		if l.Port() != addr.Port() {
			continue
		}
		la := l.Addr().Unmap()
		if la == a || (la.IsUnspecified() && a.IsLoopback()) {
			return true
		}
	}
	return false
}

var errNoTLS = errors.New("relay: STARTTLS not offered and TLS is required")
