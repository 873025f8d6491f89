package outbound

import (
	"net/netip"
	"testing"
	"time"

	"sluice/internal/fakeclock"
)

// TestCachesForgetExpiredEntries: after 10,000 one-off addresses the
// STARTTLS cache keeps only what was stored within the cache lifetime
// (issue 9 item 27), in virtual time. (MX answers are the resolver's to
// cache: resolver.TestCacheBounded.)
func TestCachesForgetExpiredEntries(t *testing.T) {
	t.Parallel()
	clock := fakeclock.New()
	ob, _ := testClient(t, nil, "", func(o *Options) {
		o.Now = clock.Now
		o.TLSCacheTTL = 5 * time.Minute
	})
	const n = 10000
	for i := range n {
		ob.noteTLS(netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)}), 25), true, false)
	}
	size := func() int {
		ob.mu.Lock()
		defer ob.mu.Unlock()
		return ob.tlsCache.Len()
	}
	if tl := size(); tl != n {
		t.Fatalf("cached %d STARTTLS facts; want %d", tl, n)
	}
	clock.Advance(5 * time.Minute)
	ob.noteTLS(netip.MustParseAddrPort("198.51.100.1:25"), true, false)
	if tl := size(); tl != 1 {
		t.Errorf("after the cache lifetime: %d STARTTLS facts; want only the fresh one", tl)
	}
}
