package outbound

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"sluice/reply"
	"sluice/resolver"
)

// Hop is one address to try for a domain, in order.
type Hop struct {
	Host string         // MX, route or smarthost host name: TLS server name and mail log
	Addr netip.AddrPort // where to connect
	TLS  string         // route or smarthost: its TLS mode; MX: delivery.tls (see requirement)
	Via  string         // "route", "smarthost" or "" (an MX host)
	Auth bool           // smarthost AUTH PLAIN with the configured credentials
}

// HopError is a next-hop resolution failure; Reply says why, the way the
// caller reports every other outcome.
type HopError struct{ Reply reply.Reply }

func (e *HopError) Error() string { return "relay: next hop: " + e.Reply.String() }
func (e *HopError) Unwrap() error { return e.Reply.Err }

// MXHosts returns the MX host names of domain in preference order, for
// destination grouping; nil, nil when a route or the smarthost applies.
// For a domain without MX records it returns the domain itself (implicit
// MX). It blocks until the resolver answers (from its cache at once):
// the scheduler calls it from goroutines of its own, at most
// delivery.resolver_concurrency at a time (scheduler/resolve.go).
func (o *Client) MXHosts(ctx context.Context, domain string) ([]string, error) {
	domain = normDomain(domain)
	if o.fixed(domain) {
		return nil, nil
	}
	a, err := o.opt.Resolver.MX(ctx, domain)
	return mxHosts(domain, a, err)
}

// fixed reports whether a route or the smarthost decides domain's next
// hop, whatever its MX records say.
func (o *Client) fixed(domain string) bool {
	_, ok := o.opt.Routes[domain]
	return ok || o.opt.Smarthost != nil
}

func mxHosts(domain string, a resolver.MXAnswer, err error) ([]string, error) {
	if err := mxError(domain, a, err); err != nil {
		return nil, err
	}
	if a.Implicit {
		return []string{domain}, nil
	}
	hosts := make([]string, len(a.Hosts))
	for i, mx := range a.Hosts {
		hosts[i] = mx.Host
	}
	return hosts, nil
}

// mxError is the *HopError of an MX answer that gives no host to try: a
// lookup that failed (temporary), NXDOMAIN (550 5.1.2) or the null MX
// (RFC 7505 §3: 556 5.1.10).
func mxError(domain string, a resolver.MXAnswer, err error) error {
	switch {
	case err != nil:
		return &HopError{Reply: reply.Reply{Stage: reply.StageConnect,
			Err: fmt.Errorf("relay: MX lookup for %s: %w", domain, err)}}
	case a.NXDomain:
		return badDestination(domain)
	case a.Null:
		return &HopError{Reply: reply.Reply{Stage: reply.StageConnect, Code: 556, Enhanced: "5.1.10",
			Text: fmt.Sprintf("domain %s does not accept mail (null MX)", domain)}}
	}
	return nil
}

// NextHops resolves where mail for domain goes: the route, else the
// smarthost, else the MX records in preference order (randomised among
// equal preference, RFC 5321 §5.1), with the implicit MX (the A/AAAA of
// the domain when it has no MX records), NXDOMAIN (550 5.1.2) and the
// null MX (RFC 7505: 556 5.1.10). CNAMEs are followed by the resolver.
// The addresses of all MX hosts are looked up at once. Errors are
// *HopError.
func (o *Client) NextHops(ctx context.Context, domain string) ([]Hop, error) {
	domain = normDomain(domain)
	if r, ok := o.opt.Routes[domain]; ok {
		return o.fixedHops(ctx, domain, r.Host, r.TLS, "route", false)
	}
	if sh := o.opt.Smarthost; sh != nil {
		return o.fixedHops(ctx, domain, sh.Host, sh.TLS, "smarthost", sh.Username != "")
	}
	a, err := o.opt.Resolver.MX(ctx, domain)
	if err := mxError(domain, a, err); err != nil {
		return nil, err
	}
	var hosts []string
	if a.Implicit {
		hosts = []string{domain}
	} else {
		mxs := slices.Clone(a.Hosts)
		// Shuffle within each preference level to spread load over
		// equal MXs (RFC 5321 §5.1), keeping the levels in order.
		for i := 0; i < len(mxs); {
			j := i
			for j < len(mxs) && mxs[j].Pref == mxs[i].Pref {
				j++
			}
			rand.Shuffle(j-i, func(a, b int) { mxs[i+a], mxs[i+b] = mxs[i+b], mxs[i+a] })
			i = j
		}
		for _, mx := range mxs {
			hosts = append(hosts, mx.Host)
		}
	}
	addrs := make([][]netip.Addr, len(hosts))
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() { addrs[i], errs[i] = o.lookupAddrs(ctx, h) })
	}
	wg.Wait()
	var hops []Hop
	var lastErr error
	for i, h := range hosts {
		if errs[i] != nil {
			// One broken MX must not stop delivery to the others.
			o.log.Debug("relay: MX host lookup failed", "domain", domain, "mx", h, "err", errs[i])
			lastErr = errs[i]
			continue
		}
		for _, ad := range addrs[i] {
			hops = append(hops, Hop{Host: h, Addr: netip.AddrPortFrom(ad, uint16(o.opt.Port)), TLS: o.opt.TLS})
		}
	}
	if len(hops) == 0 {
		// The domain exists and has no MX records, and no address
		// either: it is not a mail destination (RFC 5321 §5.1).
		if a.Implicit && errors.Is(lastErr, errNoAddress) {
			return nil, badDestination(domain)
		}
		if lastErr == nil {
			lastErr = errors.New("no addresses")
		}
		return nil, &HopError{Reply: reply.Reply{Stage: reply.StageConnect,
			Err: fmt.Errorf("relay: no usable address for %s: %w", domain, lastErr)}}
	}
	return hops, nil
}

// nextHopKey names where mail for domain goes, for connection reuse: two
// domains with the same key have the same next hop (the same route, the
// same smarthost, or the same MX host set in the same preference levels,
// on the same port) under the same TLS mode, so a session opened for one
// may carry the other's mail. A domain without MX records (implicit MX)
// is its own next hop. It reads the MX answer that grouping cached.
func (o *Client) nextHopKey(ctx context.Context, domain string) (string, error) {
	domain = normDomain(domain)
	if r, ok := o.opt.Routes[domain]; ok {
		return "route " + strings.ToLower(r.Host) + " tls=" + r.TLS, nil
	}
	if sh := o.opt.Smarthost; sh != nil {
		return "smarthost " + strings.ToLower(sh.Host) + " tls=" + sh.TLS, nil
	}
	a, err := o.opt.Resolver.MX(ctx, domain)
	if err := mxError(domain, a, err); err != nil {
		return "", err
	}
	var b strings.Builder
	if a.Implicit {
		b.WriteString("implicit " + domain)
	} else {
		b.WriteString("mx ")
		for i, mx := range a.Hosts {
			switch {
			case i == 0:
			case mx.Pref == a.Hosts[i-1].Pref:
				b.WriteByte(',') // same level: tried in random order
			default:
				b.WriteByte(';')
			}
			b.WriteString(mx.Host)
		}
	}
	fmt.Fprintf(&b, " port=%d tls=%s", o.opt.Port, o.opt.TLS)
	return b.String(), nil
}

func (o *Client) fixedHops(ctx context.Context, domain, hostport, tlsMode, via string, auth bool) ([]Hop, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, &HopError{Reply: reply.Reply{Stage: reply.StageConnect, Err: fmt.Errorf("relay: next hop %q: %w", hostport, err)}}
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, &HopError{Reply: reply.Reply{Stage: reply.StageConnect, Err: fmt.Errorf("relay: next hop %q: bad port: %w", hostport, err)}}
	}
	addrs, err := o.lookupAddrs(ctx, host)
	if err != nil {
		return nil, &HopError{Reply: reply.Reply{Stage: reply.StageConnect,
			Err: fmt.Errorf("relay: next hop %s for %s: %w", host, domain, err)}}
	}
	hops := make([]Hop, 0, len(addrs))
	for _, a := range addrs {
		hops = append(hops, Hop{Host: host, Addr: netip.AddrPortFrom(a, uint16(port)), TLS: tlsMode, Via: via, Auth: auth})
	}
	return hops, nil
}

// errNoAddress: the host name does not exist or has no A/AAAA records.
var errNoAddress = errors.New("no such host")

// lookupAddrs returns the addresses of host (an IP literal is its own),
// IPv4 first (see resolver.AddrAnswer).
func (o *Client) lookupAddrs(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	a, err := o.opt.Resolver.Addrs(ctx, host)
	if err != nil {
		return nil, err
	}
	if len(a.Addrs) == 0 {
		return nil, fmt.Errorf("relay: %s: %w", host, errNoAddress)
	}
	return a.Addrs, nil
}

func badDestination(domain string) *HopError {
	return &HopError{Reply: reply.Reply{Stage: reply.StageConnect, Code: 550, Enhanced: "5.1.2",
		Text: fmt.Sprintf("bad destination: domain %s not found", domain)}}
}

func normDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
}
