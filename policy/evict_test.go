package policy

import (
	"fmt"
	"testing"
	"time"

	"sluice/reply"
)

// TestOneOffDestinationsLeaveMemory: 10,000 destinations seen once are
// dropped from memory, with their groupings, one idle period later, and
// nothing is written for them: they learned nothing (issue 9 item 27).
func TestOneOffDestinationsLeaveMemory(t *testing.T) {
	t.Parallel()
	store := &memStore{}
	p, c := fixture(t, func(o *Options) { o.Store = store; o.InitialConcurrency = 1 })
	const n = 10000
	for i := range n {
		name := p.Group(fmt.Sprintf("d%d.example", i), []string{fmt.Sprintf("mx.d%d.example", i)}, nil)
		if ok, _ := p.Admit(name); !ok {
			t.Fatalf("%s not admitted", name)
		}
		p.Observe(name, Outcome{Reply: accepted, Rcpt: "a@" + name, Attempts: 1})
		p.Release(name)
	}
	if d, g := p.Size(); d != n || g != n {
		t.Fatalf("in memory: %d destinations, %d groupings; want %d each", d, g, n)
	}
	c.Advance(IdleAfter - time.Second)
	p.Sweep()
	if d, g := p.Size(); d != n || g != n {
		t.Fatalf("before the idle period: %d destinations, %d groupings left; want %d each", d, g, n)
	}
	c.Advance(time.Second)
	p.Sweep()
	if d, g := p.Size(); d != 0 || g != 0 {
		t.Fatalf("after the idle period: %d destinations, %d groupings left; want none", d, g)
	}
	if store.saves != 0 {
		t.Errorf("%d store writes for destinations that learned nothing", store.saves)
	}
}

// TestIdleDestinationReloadsExactly: a destination that learned limits is
// written before it leaves memory, and its next use reads back exactly
// what it had.
func TestIdleDestinationReloadsExactly(t *testing.T) {
	t.Parallel()
	store := &memStore{}
	p, c := fixture(t, func(o *Options) {
		o.Store = store
		o.InitialConcurrency = 0
		o.Destinations = []DestinationOptions{{Match: "example.com", MaxConcurrency: 7}}
	})
	const d = "google"
	p.Group("example.com", googleMX, nil)
	admitN(p, d, 6)
	for range 30 {
		p.Observe(d, Outcome{Reply: accepted, Rcpt: "a@example.com"})
		c.Advance(10 * time.Millisecond)
	}
	p.Observe(d, Outcome{Reply: rateLimited, Rcpt: "a@example.com"})
	p.Observe(d, Outcome{Reply: reply.Reply{Stage: reply.StageDataEnd, Code: 421, Enhanced: "4.7.0", Text: "too many messages in this connection"}})
	p.Observe(d, Outcome{Reply: greylisted, Rcpt: "g@example.com"})
	c.Advance(2 * time.Minute)
	p.Observe(d, Outcome{Reply: accepted, Rcpt: "g@example.com"})
	for range 6 {
		p.Release(d)
	}
	p.mu.Lock()
	dd, _ := p.dests.Get(d)
	// A change not yet stored (as slow-start growth or a step reset on
	// success are): the sweep must write it before dropping the state.
	dd.perConn.limit = 3
	before := p.restImage(dd)
	p.mu.Unlock()
	if before.Rate.Limit == 0 || before.Grey.Hi == 0 || before.Rate.Rate == 0 {
		t.Fatalf("set-up learned too little: %+v", before)
	}
	c.Advance(IdleAfter)
	p.Sweep()
	if n, _ := p.Size(); n != 0 {
		t.Fatalf("%d destinations in memory after the idle period, want 0", n)
	}
	st := mustState(t, p, d) // reads it back
	p.mu.Lock()
	dd, _ = p.dests.Get(d)
	after := p.restImage(dd)
	p.mu.Unlock()
	if !sameImage(before, after) {
		t.Errorf("reloaded state differs:\nbefore %+v\nafter  %+v", before, after)
	}
	if st.MaxConcurrency != 7 {
		t.Errorf("reloaded max concurrency %d, want the example.com override 7", st.MaxConcurrency)
	}
}

// TestDestinationInForceStays: sessions, a pause and a recent rate cut
// keep a destination in memory past the idle period.
func TestDestinationInForceStays(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) {
		o.Store = &memStore{}
		o.RetryMax = 3 * time.Hour
		o.Rules = []Rule{{Match: "TSS04", Class: ClassSuspend, For: 2 * time.Hour}}
	})
	admitN(p, "busy", 1) // never released
	p.Admit("blocked")
	p.Observe("blocked", Outcome{Reply: reply.Reply{Stage: reply.StageMail, Code: 421, Enhanced: "4.7.0", Text: "[TSS04] deferred"}})
	p.Release("blocked")
	p.Admit("idle")
	p.Release("idle")
	c.Advance(IdleAfter)
	p.Sweep()
	for _, name := range []string{"busy", "blocked"} {
		p.mu.Lock()
		_, ok := p.dests.Get(name)
		p.mu.Unlock()
		if !ok {
			t.Errorf("%s left memory while in force", name)
		}
	}
	if n, _ := p.Size(); n != 2 {
		t.Errorf("%d destinations in memory, want busy and blocked", n)
	}
	// The suspension ends after 2 h; the rate cut it made is remembered
	// for retry_max (3 h) since then, then one more idle period.
	c.Advance(4 * time.Hour)
	p.Sweep()
	if n, _ := p.Size(); n != 1 {
		t.Errorf("%d destinations in memory after the suspension, want only busy", n)
	}
	if st := mustState(t, p, "blocked"); st.State != StateProbing {
		t.Errorf("reloaded blocked is %s, want probing (its suspension is over)", st.State)
	}
}
