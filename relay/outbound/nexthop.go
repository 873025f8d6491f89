package outbound

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"sluice/reply"
)

// Hop is one address to try for a domain, in order.
type Hop struct {
	Host string         // MX, route or smarthost host name: TLS server name and mail log
	Addr netip.AddrPort // where to connect
	TLS  string         // effective TLS mode
	Auth bool           // smarthost AUTH PLAIN with the configured credentials
}

// HopError is a next-hop resolution failure; Reply says why, the way the
// caller reports every other outcome.
type HopError struct{ Reply reply.Reply }

func (e *HopError) Error() string { return "relay: next hop: " + e.Reply.String() }
func (e *HopError) Unwrap() error { return e.Reply.Err }

type mxEntry struct {
	mxs      []*net.MX // sorted by preference then name; nil with implicit = true
	implicit bool      // no MX records: RFC 5321 §5.1 implicit MX
	err      error     // a *HopError that is permanent (NXDOMAIN, null MX)
	expires  time.Time
}

// MXHosts returns the MX host names of domain in preference order, for
// destination grouping; nil, nil when a route or the smarthost applies.
// For a domain without MX records it returns the domain itself (implicit
// MX). Results are cached for MXCacheTTL.
func (o *Client) MXHosts(ctx context.Context, domain string) ([]string, error) {
	domain = normDomain(domain)
	if _, ok := o.opt.Routes[domain]; ok || o.opt.Smarthost != nil {
		return nil, nil
	}
	e, err := o.lookupMX(ctx, domain)
	if err != nil {
		return nil, err
	}
	if e.implicit {
		return []string{domain}, nil
	}
	hosts := make([]string, len(e.mxs))
	for i, mx := range e.mxs {
		hosts[i] = mx.Host
	}
	return hosts, nil
}

// NextHops resolves where mail for domain goes: the route, else the
// smarthost, else the MX records in preference order (randomised among
// equal preference, RFC 5321 §5.1), with the implicit MX (the A/AAAA of
// the domain when it has no MX) and the null MX (RFC 7505: 556 5.1.10).
// Errors are *HopError.
func (o *Client) NextHops(ctx context.Context, domain string) ([]Hop, error) {
	domain = normDomain(domain)
	if r, ok := o.opt.Routes[domain]; ok {
		return o.fixedHops(ctx, domain, r.Host, r.TLS, false)
	}
	if sh := o.opt.Smarthost; sh != nil {
		return o.fixedHops(ctx, domain, sh.Host, sh.TLS, sh.Username != "")
	}
	e, err := o.lookupMX(ctx, domain)
	if err != nil {
		return nil, err
	}
	var hosts []string
	if e.implicit {
		hosts = []string{domain}
	} else {
		mxs := slices.Clone(e.mxs)
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
	var hops []Hop
	var lastErr error
	for _, h := range hosts {
		addrs, err := o.lookupAddrs(ctx, h)
		if err != nil {
			// One broken MX must not stop delivery to the others.
			o.log.Debug("relay: MX host lookup failed", "domain", domain, "mx", h, "err", err)
			lastErr = err
			continue
		}
		for _, a := range addrs {
			hops = append(hops, Hop{Host: h, Addr: netip.AddrPortFrom(a, uint16(o.opt.Port)), TLS: o.opt.TLS})
		}
	}
	if len(hops) == 0 {
		if e.implicit && isNotFound(lastErr) {
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
// is its own next hop. It uses the MX cache that grouping filled.
func (o *Client) nextHopKey(ctx context.Context, domain string) (string, error) {
	domain = normDomain(domain)
	if r, ok := o.opt.Routes[domain]; ok {
		return "route " + strings.ToLower(r.Host) + " tls=" + r.TLS, nil
	}
	if sh := o.opt.Smarthost; sh != nil {
		return "smarthost " + strings.ToLower(sh.Host) + " tls=" + sh.TLS, nil
	}
	e, err := o.lookupMX(ctx, domain)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if e.implicit {
		b.WriteString("implicit " + domain)
	} else {
		b.WriteString("mx ")
		for i, mx := range e.mxs {
			switch {
			case i == 0:
			case mx.Pref == e.mxs[i-1].Pref:
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

func (o *Client) fixedHops(ctx context.Context, domain, hostport, tlsMode string, auth bool) ([]Hop, error) {
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
		hops = append(hops, Hop{Host: host, Addr: netip.AddrPortFrom(a, uint16(port)), TLS: tlsMode, Auth: auth})
	}
	return hops, nil
}

// lookupMX returns the cached or freshly resolved MX set. Temporary DNS
// failures are not cached, so the next attempt asks again.
func (o *Client) lookupMX(ctx context.Context, domain string) (mxEntry, error) {
	now := o.now()
	o.mu.Lock()
	e, ok := o.mxCache.Get(domain)
	o.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e, e.err
	}
	mxs, err := o.opt.Resolver.LookupMX(ctx, domain)
	e = mxEntry{expires: now.Add(o.opt.MXCacheTTL)}
	switch {
	case err != nil && !isNotFound(err):
		return e, &HopError{Reply: reply.Reply{Stage: reply.StageConnect,
			Err: fmt.Errorf("relay: MX lookup for %s: %w", domain, err)}}
	case err != nil || len(mxs) == 0:
		// No MX records (or, for Go's resolver, possibly NXDOMAIN):
		// RFC 5321 §5.1 says to use the domain's own address records.
		// NextHops tells NXDOMAIN apart when that lookup fails too.
		e.implicit = true
	case len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == ""):
		e.err = &HopError{Reply: reply.Reply{Stage: reply.StageConnect, Code: 556, Enhanced: "5.1.10",
			Text: fmt.Sprintf("domain %s does not accept mail (null MX)", domain)}}
	default:
		for _, mx := range mxs {
			h := normDomain(mx.Host)
			if h == "" {
				continue // a "." among real MXs is meaningless (RFC 7505 §3)
			}
			e.mxs = append(e.mxs, &net.MX{Host: h, Pref: mx.Pref})
		}
		slices.SortStableFunc(e.mxs, func(a, b *net.MX) int {
			return cmp.Or(cmp.Compare(a.Pref, b.Pref), strings.Compare(a.Host, b.Host))
		})
		if len(e.mxs) == 0 {
			e.implicit = true
		}
	}
	o.mu.Lock()
	// Entries are stored with one lifetime, so the least recently stored
	// are the expired ones.
	o.mxCache.Evict(now, o.opt.MXCacheTTL, nil)
	o.mxCache.Put(domain, e, now)
	o.mu.Unlock()
	return e, e.err
}

func (o *Client) lookupAddrs(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	raw, err := o.opt.Resolver.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	for _, s := range raw {
		if a, err := netip.ParseAddr(s); err == nil {
			addrs = append(addrs, a.Unmap())
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("relay: %s has no usable address", host)
	}
	return addrs, nil
}

func badDestination(domain string) *HopError {
	return &HopError{Reply: reply.Reply{Stage: reply.StageConnect, Code: 550, Enhanced: "5.1.2",
		Text: fmt.Sprintf("bad destination: domain %s not found", domain)}}
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

func normDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
}
