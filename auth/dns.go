package auth

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// dnsCache wraps a Resolver with a per-lookup timeout, a cache, and a
// cooldown after a resolver timeout. It satisfies Resolver itself, so it can
// be handed to blitiri.com.ar/go/spf.
//
// A Resolver that caches by the records' own TTLs (the daemon's shared
// resolver.Compat) says so with a CachesAnswers method: dnsCache then keeps
// only its timeout and cooldown. How long an answer is good for is the
// record's TTL, and a second cache under auth.cache_ttl would serve it
// past that (one owner per fact). The cooldown stays: it bounds how long
// an SMTP reply waits for a resolver that is down, an acceptance concern.
//
// Errors are always bare *net.DNSError values: spf and go-msgauth detect
// temporary and not-found errors by type assertion, not errors.As.
type dnsCache struct {
	r        Resolver
	timeout  time.Duration
	ttl      time.Duration
	cooldown time.Duration
	now      func() time.Time
	cache    bool // false when r caches by TTL itself

	mu        sync.Mutex
	entries   map[string]dnsEntry
	downUntil time.Time
}

type dnsEntry struct {
	val     any
	err     error
	expires time.Time
}

// maxDNSEntries bounds the cache; expired entries are dropped first, and
// when everything is still fresh the cache starts over.
const maxDNSEntries = 10000

// answerCaching is implemented by a Resolver that caches answers by their
// TTLs (resolver.Compat).
type answerCaching interface{ CachesAnswers() }

func newDNSCache(r Resolver, timeout, ttl, cooldown time.Duration, now func() time.Time) *dnsCache {
	_, cached := r.(answerCaching)
	return &dnsCache{r: r, timeout: timeout, ttl: ttl, cooldown: cooldown, now: now, cache: !cached, entries: map[string]dnsEntry{}}
}

func (d *dnsCache) LookupTXT(ctx context.Context, name string) ([]string, error) {
	v, err := d.lookup(ctx, "TXT", name, func(ctx context.Context) (any, error) { return d.r.LookupTXT(ctx, name) })
	s, _ := v.([]string)
	return s, err
}

func (d *dnsCache) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	v, err := d.lookup(ctx, "IP", host, func(ctx context.Context) (any, error) { return d.r.LookupIPAddr(ctx, host) })
	s, _ := v.([]net.IPAddr)
	return s, err
}

func (d *dnsCache) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	v, err := d.lookup(ctx, "MX", name, func(ctx context.Context) (any, error) { return d.r.LookupMX(ctx, name) })
	s, _ := v.([]*net.MX)
	return s, err
}

func (d *dnsCache) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	v, err := d.lookup(ctx, "PTR", addr, func(ctx context.Context) (any, error) { return d.r.LookupAddr(ctx, addr) })
	s, _ := v.([]string)
	return s, err
}

// txtFunc adapts LookupTXT to go-msgauth's context-free callback.
func (d *dnsCache) txtFunc(ctx context.Context) func(string) ([]string, error) {
	return func(name string) ([]string, error) { return d.LookupTXT(ctx, name) }
}

func (d *dnsCache) lookup(ctx context.Context, kind, name string, f func(context.Context) (any, error)) (any, error) {
	key := kind + " " + normDomain(name)
	now := d.now()
	d.mu.Lock()
	if e, ok := d.entries[key]; ok && now.Before(e.expires) {
		d.mu.Unlock()
		return e.val, e.err
	}
	if now.Before(d.downUntil) {
		d.mu.Unlock()
		// The resolver timed out recently: answer temperror at once rather
		// than make every session wait for another timeout.
		return nil, &net.DNSError{Err: "resolver unreachable, skipped during cooldown", Name: name, IsTemporary: true, IsTimeout: true}
	}
	d.mu.Unlock()

	lctx, cancel := context.WithTimeout(ctx, d.timeout)
	val, err := f(lctx)
	timedOut := errors.Is(lctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	cancel()
	if err != nil {
		var de *net.DNSError
		switch {
		case errors.As(err, &de) && de.IsTimeout, timedOut:
			timedOut = true
			err = &net.DNSError{Err: "lookup timed out", Name: name, IsTemporary: true, IsTimeout: true}
		case errors.As(err, &de) && !de.IsNotFound && !de.IsTemporary:
			// REFUSED, FORMERR and the like ("server misbehaving"): the
			// resolver failed, the name may well exist. RFC 7208 §4.4 makes
			// any RCODE other than 0 and 3 a temperror, and go-msgauth's
			// DMARC lookup would otherwise take it for a broken record.
			cp := *de
			cp.IsTemporary = true
			err = &cp
		case errors.As(err, &de):
			err = de
		default:
			err = &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
		}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if timedOut {
		d.downUntil = d.now().Add(d.cooldown)
		return nil, err
	}
	// Cache answers and NXDOMAIN/NODATA (negative caching, RFC 2308), but
	// never a temporary error: the next message should try again.
	var de *net.DNSError
	if d.cache && (err == nil || (errors.As(err, &de) && de.IsNotFound)) {
		if len(d.entries) >= maxDNSEntries {
			d.prune(now)
		}
		d.entries[key] = dnsEntry{val: val, err: err, expires: now.Add(d.ttl)}
	}
	return val, err
}

func (d *dnsCache) prune(now time.Time) {
	for k, e := range d.entries {
		if !now.Before(e.expires) {
			delete(d.entries, k)
		}
	}
	if len(d.entries) >= maxDNSEntries {
		d.entries = map[string]dnsEntry{}
	}
}

func isNotFoundDNS(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}
