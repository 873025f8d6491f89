// Package resolvertest gives tests the daemon's resolver (package
// resolver: caching, TTL bounds, the AD bit) answering from an
// in-process zone (internal/dnstest) instead of the network. It is apart
// from dnstest because the resolver's own tests import dnstest.
package resolvertest

import (
	"testing"
	"time"

	"sluice/internal/dnstest"
	"sluice/resolver"
)

// New returns a resolver answering from a in process, closed when the
// test ends; ad sets the AD bit on every answer (a validating
// resolver's word that the zone is DNSSEC-signed, as DANE needs).
func New(t testing.TB, a dnstest.Answerer, ad bool) *resolver.Resolver {
	t.Helper()
	r, err := resolver.New(resolver.Options{Transport: dnstest.NewInProcess(a, ad), Workers: 4, MinTTL: time.Second, MaxTTL: time.Hour, MaxEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}
