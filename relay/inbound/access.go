package inbound

import (
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// mayRelay reports whether a client may submit without AUTH: it must be
// in one of the trusted networks, and the listener must not require AUTH.
func (g *generation) mayRelay(ip netip.Addr) bool {
	if g.o.RequireAuth {
		return false
	}
	for _, p := range g.o.Networks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// domainAllowed checks an authenticated user's envelope sender domain
// against AllowedFrom (case-insensitively: domains are, RFC 5321 §2.4).
func domainAllowed(u *User, domain string) bool {
	if len(u.AllowedFrom) == 0 {
		return true
	}
	for _, d := range u.AllowedFrom {
		if strings.EqualFold(d, domain) {
			return true
		}
	}
	return false
}

// limiters is a token bucket per client IP on the injected clock.
type limiters struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu sync.Mutex
	m  map[netip.Addr]*rate.Limiter
}

// limitersPrune is the map size above which full (idle) buckets are
// dropped, so that many one-off clients do not grow it forever.
const limitersPrune = 4096

func newLimiters(l rate.Limit, burst int, now func() time.Time) *limiters {
	return &limiters{limit: l, burst: burst, now: now, m: make(map[netip.Addr]*rate.Limiter)}
}

// exhausted reports whether ip has no token left, without taking one.
func (l *limiters) exhausted(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.m[ip]
	return ok && lim.TokensAt(l.now()) < 1
}

// allow takes a token for ip and reports whether there was one.
func (l *limiters) allow(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	lim, ok := l.m[ip]
	if !ok {
		if len(l.m) >= limitersPrune {
			for k, v := range l.m {
				if v.TokensAt(now) >= float64(l.burst) {
					delete(l.m, k)
				}
			}
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.m[ip] = lim
	}
	return lim.AllowN(now, 1)
}
