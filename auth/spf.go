package auth

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"blitiri.com.ar/go/spf"
)

// checkSPF evaluates check_host() (RFC 7208 §4) for one client address
// through the given resolver. All DNS goes through r; blitiri's own default
// resolver is never used.
func checkSPF(ctx context.Context, r Resolver, ip netip.Addr, helo, sender string) (spf.Result, error) {
	return spf.CheckHostWithSender(net.IP(ip.Unmap().AsSlice()), helo, sender,
		spf.WithContext(ctx), spf.WithResolver(r))
}

// spfCache memoises SPF results per (address, sender). The sender, not only
// its domain, is the key because macros (RFC 7208 §7) may expand the local
// part. Temporary errors are not cached.
type spfCache struct {
	r   Resolver
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	results map[string]spfEntry
}

type spfEntry struct {
	res     spf.Result
	err     error
	expires time.Time
}

func newSPFCache(r Resolver, ttl time.Duration, now func() time.Time) *spfCache {
	return &spfCache{r: r, ttl: ttl, now: now, results: map[string]spfEntry{}}
}

func (s *spfCache) check(ctx context.Context, ip netip.Addr, helo, sender string) (spf.Result, error) {
	key := ip.String() + " " + strings.ToLower(sender) + " " + strings.ToLower(helo)
	now := s.now()
	s.mu.Lock()
	if e, ok := s.results[key]; ok && now.Before(e.expires) {
		s.mu.Unlock()
		return e.res, e.err
	}
	s.mu.Unlock()
	res, err := checkSPF(ctx, s.r, ip, helo, sender)
	if res != spf.TempError {
		s.mu.Lock()
		if len(s.results) >= maxDNSEntries {
			s.results = map[string]spfEntry{}
		}
		s.results[key] = spfEntry{res: res, err: err, expires: now.Add(s.ttl)}
		s.mu.Unlock()
	}
	return res, err
}
