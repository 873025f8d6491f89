package outbound

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"sluice/internal/fakeclock"
)

// TestCachesForgetExpiredEntries: after 10,000 one-off domains and
// addresses, the MX and STARTTLS caches keep only what was stored within
// the cache lifetime (issue 9 item 27), in virtual time.
func TestCachesForgetExpiredEntries(t *testing.T) {
	t.Parallel()
	clock := fakeclock.New()
	ob, _ := testClient(t, nil, "", func(o *Options) {
		o.Now = clock.Now
		o.MXCacheTTL = 5 * time.Minute
	})
	const n = 10000
	for i := range n {
		// Every name is NXDOMAIN at the fake resolver: cached as implicit MX.
		if _, err := ob.MXHosts(context.Background(), fmt.Sprintf("d%d.example", i)); err != nil {
			t.Fatal(err)
		}
		ob.noteTLS(netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)}), 25), true, false)
	}
	size := func() (int, int) {
		ob.mu.Lock()
		defer ob.mu.Unlock()
		return ob.mxCache.Len(), ob.tlsCache.Len()
	}
	if mx, tl := size(); mx != n || tl != n {
		t.Fatalf("cached %d MX sets, %d STARTTLS facts; want %d each", mx, tl, n)
	}
	clock.Advance(5 * time.Minute)
	ob.MXHosts(context.Background(), "fresh.example")
	ob.noteTLS(netip.MustParseAddrPort("198.51.100.1:25"), true, false)
	if mx, tl := size(); mx != 1 || tl != 1 {
		t.Errorf("after the cache lifetime: %d MX sets, %d STARTTLS facts; want only the fresh one of each", mx, tl)
	}
}
