package resolver

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// MX is one mail exchanger.
type MX struct {
	Host string // lower case, without the final dot
	Pref uint16
}

// MXAnswer is what DNS says about where a domain's mail goes (RFC 5321
// §5.1).
type MXAnswer struct {
	// Hosts are the MX hosts by preference, then name (callers randomise
	// among equal preferences). Empty when Implicit, Null or NXDomain.
	Hosts []MX
	// Implicit: the domain exists but has no MX records, so its own
	// address records are its mail exchanger (RFC 5321 §5.1).
	Implicit bool
	// Null: the domain publishes the null MX "0 ." and accepts no mail
	// (RFC 7505 §3); a "." among real MX records is ignored instead.
	Null     bool
	NXDomain bool // the domain does not exist
	AD       bool // DNSSEC-validated (see Answer.AD)
}

// AddrAnswer is the A and AAAA records of a host.
type AddrAnswer struct {
	// Addrs are the IPv4 addresses, then the IPv6 ones: IPv4 first
	// because receivers judge an IPv6 sender more strictly (reverse DNS,
	// authentication), and the next address is tried when one fails.
	Addrs    []netip.Addr
	NXDomain bool // the host name does not exist
	AD       bool // both lookups were DNSSEC-validated
}

// MX returns where mail for domain goes, blocking (see the package doc).
func (r *Resolver) MX(ctx context.Context, domain string) (MXAnswer, error) {
	a, err := r.Lookup(ctx, domain, dns.TypeMX)
	if err != nil {
		return MXAnswer{}, err
	}
	return mxAnswer(a), nil
}

// TryMX is MX from the cache, or ErrPending and ready later.
func (r *Resolver) TryMX(domain string, ready func()) (MXAnswer, error) {
	a, err := r.TryLookup(domain, dns.TypeMX, ready)
	if err != nil {
		return MXAnswer{}, err
	}
	return mxAnswer(a), nil
}

func mxAnswer(a Answer) MXAnswer {
	out := MXAnswer{NXDomain: a.NXDomain, AD: a.AD}
	if a.NXDomain {
		return out
	}
	null := false
	for _, rr := range a.Records {
		mx, ok := rr.(*dns.MX)
		if !ok {
			continue
		}
		h := strings.TrimSuffix(strings.ToLower(mx.Mx), ".")
		if h == "" {
			null = true
			continue
		}
		out.Hosts = append(out.Hosts, MX{Host: h, Pref: mx.Preference})
	}
	switch {
	case len(out.Hosts) > 0:
		slices.SortFunc(out.Hosts, func(a, b MX) int {
			return cmp.Or(cmp.Compare(a.Pref, b.Pref), strings.Compare(a.Host, b.Host))
		})
		out.Hosts = slices.Compact(out.Hosts)
	case null:
		out.Null = true
	default:
		out.Implicit = true
	}
	return out
}

// Addrs returns the A and AAAA records of host (both asked at once),
// blocking (see the package doc).
func (r *Resolver) Addrs(ctx context.Context, host string) (AddrAnswer, error) {
	return r.addrs(ctx, host, false)
}

func (r *Resolver) addrs(ctx context.Context, host string, urgent bool) (AddrAnswer, error) {
	ents, err := r.wait(ctx, urgent, makeKey(host, dns.TypeA), makeKey(host, dns.TypeAAAA))
	if err != nil {
		return AddrAnswer{}, err
	}
	return addrAnswer(ents[0], ents[1])
}

// TryAddrs is Addrs from the cache, or ErrPending and ready later (once,
// when both lookups are done).
func (r *Resolver) TryAddrs(host string, ready func()) (AddrAnswer, error) {
	ents, ok := r.try(ready, makeKey(host, dns.TypeA), makeKey(host, dns.TypeAAAA))
	if !ok {
		return AddrAnswer{}, ErrPending
	}
	return addrAnswer(ents[0], ents[1])
}

// addrAnswer merges the A and AAAA lookups. One family that fails does
// not hide the other's addresses (a broken AAAA must not stop IPv4
// delivery); but with no address at all, a failure is a failure, not
// "no addresses".
func addrAnswer(v4, v6 entry) (AddrAnswer, error) {
	var out AddrAnswer
	for _, e := range []entry{v4, v6} {
		if e.err != nil {
			continue
		}
		for _, rr := range e.ans.Records {
			switch rr := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(rr.A.To4()); ok {
					out.Addrs = append(out.Addrs, a)
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(rr.AAAA.To16()); ok {
					out.Addrs = append(out.Addrs, a.Unmap())
				}
			}
		}
	}
	if len(out.Addrs) == 0 {
		if v4.err != nil {
			return AddrAnswer{}, v4.err
		}
		if v6.err != nil {
			return AddrAnswer{}, v6.err
		}
	}
	out.NXDomain = len(out.Addrs) == 0 && (v4.ans.NXDomain || v6.ans.NXDomain)
	out.AD = v4.err == nil && v6.err == nil && v4.ans.AD && v6.ans.AD
	return out, nil
}
