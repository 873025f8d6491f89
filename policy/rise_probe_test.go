package policy

import (
	"testing"
	"time"
)

// TestConcurrencyClimbsWhileOneSessionDelivers: a receiver that took one
// session refused a second ("too many connections"): the limit comes
// down. Then it takes everything. The one session left delivers
// flat out and never ends; the scheduler asks Ready (not Admit) while it
// has due work, and Ready says no session may open. That is the limit
// holding sessions back: the limit must climb back (the scale bench's
// drain of a million ran on one session, 1,137 msg/s, after the slow
// receiver's refusal; TestRaisedRateFoundInSeconds has the rate's
// counterpart).
func TestConcurrencyClimbsWhileOneSessionDelivers(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) { o.MaxConcurrency = 20 })
	const dest = "dest.test"
	if n := admitN(p, dest, 2); n != 2 {
		t.Fatalf("admitted %d, want 2", n)
	}
	p.Observe(dest, Outcome{Reply: accepted, Rcpt: "a@dest.test"})
	p.Observe(dest, Outcome{Reply: tooManyConns})
	p.Release(dest)
	if s := mustState(t, p, dest); s.Concurrency != 1 || s.Active != 1 {
		t.Fatalf("after the refusal: concurrency %d, %d active; want 1 and 1", s.Concurrency, s.Active)
	}
	active := 1
	for range 3000 { // 30 s
		c.Advance(10 * time.Millisecond)
		for range active {
			p.Observe(dest, Outcome{Reply: accepted, Rcpt: "a@dest.test"})
		}
		if n, _ := p.Ready(dest); n > 0 {
			active += admitN(p, dest, n)
		}
	}
	if s := mustState(t, p, dest); s.Concurrency < 10 || active < 10 {
		t.Errorf("30 s after the refusal, every message accepted: concurrency %d, %d sessions; want at least 10", s.Concurrency, active)
	}
}
