package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"sluice/config"
	"sluice/internal/fakeclock"
	"sluice/policy"
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestOneOffDestinationsLeaveMemory: destinations that each get one
// message leave the scheduler's map as soon as their mail is done, and
// policy's state and groupings for them one idle period later, in
// virtual time (issue 9 item 27). 2,000 destinations; SLUICE_LONG=1 runs
// 10,000 (policy's own test always does).
func TestOneOffDestinationsLeaveMemory(t *testing.T) {
	t.Parallel()
	clock := fakeclock.New()
	po := policy.OptionsFrom(config.Default())
	po.Now, po.Rand, po.Logger = clock.Now, func() float64 { return 0.5 }, quietLog()
	pol, err := policy.New(po)
	if err != nil {
		t.Fatal(err)
	}
	q := newMemQueue(t)
	n := 2000
	if os.Getenv("SLUICE_LONG") != "" {
		n = 10000
	}
	for i := range n {
		q.add("app@src.test", fmt.Sprintf("u@d%d.example", i), clock.Now())
	}
	out := &fakeOutbound{}
	so := testOptions(q, pol, out, quietLog())
	so.Clock = clock
	s := mustNew(t, so)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, context.Background()); close(done) }()
	defer func() { cancel(); <-done }()
	eventually(t, "every message sent", func() bool { return q.sent() == n })
	eventually(t, "the scheduler to forget every destination", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.dests) == 0
	})
	if d, g := pol.Size(); d != n || g != n {
		t.Fatalf("policy holds %d destinations, %d groupings before the idle period; want %d each", d, g, n)
	}
	clock.Advance(policy.IdleAfter)
	pol.Sweep() // what the Run loop does on every turn
	if d, g := pol.Size(); d != 0 || g != 0 {
		t.Errorf("policy holds %d destinations, %d groupings after the idle period; want none", d, g)
	}
	if out.lookups != n {
		t.Errorf("%d MX lookups for %d domains", out.lookups, n)
	}
}

// TestOverrideOnProviderDomainFromFirstMessage: an override on a domain
// hosted at a provider limits the provider's destination from the first
// message to any of its domains, even when no mail goes to the overridden
// domain itself (issue 9 item 22).
func TestOverrideOnProviderDomainFromFirstMessage(t *testing.T) {
	t.Parallel()
	po := policy.OptionsFrom(config.Default())
	po.GroupBy, po.MaxConcurrency, po.InitialConcurrency, po.Logger = "mx", 20, 0, quietLog()
	po.Destinations = []policy.DestinationOptions{{Match: "example.com", MaxConcurrency: 1}}
	pol, err := policy.New(po)
	if err != nil {
		t.Fatal(err)
	}
	q := newMemQueue(t)
	for i := range 5 {
		q.add("app@src.test", fmt.Sprintf("u%d@gmail.com", i), time.Now())
	}
	var firstMax atomic.Int64
	out := &fakeOutbound{
		mx: map[string][]string{"example.com": {"aspmx.l.google.com"}, "gmail.com": {"gmail-smtp-in.l.google.com"}},
		hold: func(string) {
			if st, ok := pol.State("google"); ok {
				firstMax.CompareAndSwap(0, int64(st.MaxConcurrency))
			}
		},
	}
	s := mustNew(t, testOptions(q, pol, out, quietLog()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, context.Background()); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for q.sent() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("sent %d of 5 in 10 s", q.sent())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := firstMax.Load(); got != 1 {
		t.Errorf("google's max concurrency at the first message: %d, want the example.com override 1", got)
	}
	if p := out.peak(); p > 1 {
		t.Errorf("%d sessions at once to google, want at most 1", p)
	}
}
