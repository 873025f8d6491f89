package resolver

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Compat answers in the shape of *net.Resolver, for code written against
// it: auth's Resolver and blitiri.com.ar/go/spf's DNSResolver. As with
// net.Resolver, NXDOMAIN and NODATA are both a *net.DNSError with
// IsNotFound, a failure one with IsTemporary; errors are always bare
// *net.DNSError values (spf and go-msgauth check them by type assertion,
// not errors.As). Its lookups are urgent (see the package doc): an SMTP
// client waits for them.
type Compat struct{ r *Resolver }

// Compat returns the *net.Resolver-shaped view of r.
func (r *Resolver) Compat() Compat { return Compat{r} }

// CachesAnswers marks a resolver that caches by the records' own TTLs,
// so that auth does not cache its answers again under a lifetime of its
// own.
func (Compat) CachesAnswers() {}

func (c Compat) LookupTXT(ctx context.Context, name string) ([]string, error) {
	a, err := c.r.lookup(ctx, name, dns.TypeTXT, true)
	if err != nil {
		return nil, netError(name, err)
	}
	var out []string
	for _, rr := range a.Records {
		if t, ok := rr.(*dns.TXT); ok {
			// One record's character-strings make one string, as
			// net.Resolver joins them (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	if len(out) == 0 {
		return nil, notFound(name)
	}
	return out, nil
}

func (c Compat) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	a, err := c.r.lookup(ctx, name, dns.TypeMX, true)
	if err != nil {
		return nil, netError(name, err)
	}
	var out []*net.MX
	for _, rr := range a.Records {
		if mx, ok := rr.(*dns.MX); ok {
			out = append(out, &net.MX{Host: mx.Mx, Pref: mx.Preference})
		}
	}
	if len(out) == 0 {
		return nil, notFound(name)
	}
	slices.SortStableFunc(out, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	return out, nil
}

func (c Compat) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	a, err := c.r.addrs(ctx, host, true)
	if err != nil {
		return nil, netError(host, err)
	}
	if len(a.Addrs) == 0 {
		return nil, notFound(host)
	}
	out := make([]net.IPAddr, len(a.Addrs))
	for i, ip := range a.Addrs {
		out[i] = net.IPAddr{IP: ip.AsSlice()}
	}
	return out, nil
}

func (c Compat) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	rev, err := dns.ReverseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: "unrecognized address", Name: addr}
	}
	a, err := c.r.lookup(ctx, rev, dns.TypePTR, true)
	if err != nil {
		return nil, netError(addr, err)
	}
	var out []string
	for _, rr := range a.Records {
		if p, ok := rr.(*dns.PTR); ok {
			out = append(out, p.Ptr)
		}
	}
	if len(out) == 0 {
		return nil, notFound(addr)
	}
	return out, nil
}

func notFound(name string) *net.DNSError {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func netError(name string, err error) *net.DNSError {
	var e *Error
	timeout := errors.As(err, &e) && e.Timeout
	return &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true, IsTimeout: timeout}
}
