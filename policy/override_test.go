package policy

import (
	"testing"
)

var (
	googleMX = []string{"aspmx.l.google.com"}
	gmailMX  = []string{"gmail-smtp-in.l.google.com"}
)

// TestOverrideOnGroupedDomainIgnoresOrder: an override for a domain hosted
// at a provider limits the provider's whole destination, whether the
// domain or another domain of the provider is seen first (issue 9 item 22).
func TestOverrideOnGroupedDomainIgnoresOrder(t *testing.T) {
	t.Parallel()
	o := testOptions(func(o *Options) {
		o.InitialConcurrency = 0
		o.Destinations = []DestinationOptions{{Match: "Example.COM", MaxConcurrency: 3}}
	})
	orders := map[string]func(p *Policy){
		"override domain first": func(p *Policy) {
			p.Group("example.com", googleMX, nil)
			p.Group("gmail.com", gmailMX, nil)
		},
		"other domain first, destination already in use": func(p *Policy) {
			p.Group("gmail.com", gmailMX, nil)
			admitN(p, "google", 1)
			p.Group("example.com", googleMX, nil)
		},
	}
	for name, see := range orders {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, _ := fixtureOf(t, o)
			see(p)
			if got := mustState(t, p, "google").MaxConcurrency; got != 3 {
				t.Errorf("google max concurrency %d, want the example.com override 3", got)
			}
			if got := admitN(p, "google", 10); got > 3 {
				t.Errorf("google admitted %d sessions in all, want at most 3", got)
			}
		})
	}
}

// TestOverrideOnGroupedDomainAfterRestart: a destination restored from the
// store gets the override of a domain grouped into it, before and after
// that domain is seen again.
func TestOverrideOnGroupedDomainAfterRestart(t *testing.T) {
	t.Parallel()
	store := &memStore{}
	o := testOptions(func(o *Options) {
		o.Store = store
		o.InitialConcurrency = 0
		o.Destinations = []DestinationOptions{{Match: "example.com", MaxConcurrency: 3}}
	})
	p1, _ := fixtureOf(t, o)
	p1.Group("example.com", googleMX, nil)
	admitN(p1, "google", 1)
	p1.Observe("google", Outcome{Reply: outage}) // something worth persisting
	if store.m["google"] == nil {
		t.Fatal("nothing persisted for google")
	}
	p2, _ := fixtureOf(t, o)
	if got := mustState(t, p2, "google").MaxConcurrency; got != 3 {
		t.Errorf("restored google max concurrency %d before example.com is seen again, want 3", got)
	}
	p2.Group("gmail.com", gmailMX, nil)
	p2.Group("example.com", googleMX, nil)
	if got := mustState(t, p2, "google").MaxConcurrency; got != 3 {
		t.Errorf("restored google max concurrency %d after example.com is seen again, want 3", got)
	}
}

// TestTwoOverridesOnOneDestination: the override naming the destination
// wins for the limits it sets; otherwise the most restrictive override of
// the domains grouped into it, whatever the order.
func TestTwoOverridesOnOneDestination(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		dests    []DestinationOptions
		conc     int
		rate     float64
		domains  []string
		reversed bool
	}{
		{"most restrictive of two domains", []DestinationOptions{{Match: "a.example", MaxConcurrency: 4, Rate: 5}, {Match: "b.example", MaxConcurrency: 2, Rate: 50}}, 2, 5, nil, false},
		{"most restrictive, reverse order", []DestinationOptions{{Match: "a.example", MaxConcurrency: 4, Rate: 5}, {Match: "b.example", MaxConcurrency: 2, Rate: 50}}, 2, 5, nil, true},
		{"provider name wins what it sets", []DestinationOptions{{Match: "a.example", MaxConcurrency: 2, Rate: 5}, {Match: "google", MaxConcurrency: 8}}, 8, 5, nil, false},
		{"provider name wins, reverse order", []DestinationOptions{{Match: "google", MaxConcurrency: 8}, {Match: "a.example", MaxConcurrency: 2, Rate: 5}}, 8, 5, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, _ := fixture(t, func(o *Options) { o.InitialConcurrency = 0; o.Destinations = tc.dests })
			seen := []string{"a.example", "b.example"}
			if tc.reversed {
				seen = []string{"b.example", "a.example"}
			}
			for _, d := range seen {
				p.Group(d, googleMX, nil)
			}
			s := mustState(t, p, "google")
			if s.MaxConcurrency != tc.conc || float64(s.MaxRate) != tc.rate {
				t.Errorf("google max concurrency %d rate %v, want %d %v", s.MaxConcurrency, float64(s.MaxRate), tc.conc, tc.rate)
			}
		})
	}
}
