package policy

import (
	"testing"
	"time"

	"golang.org/x/time/rate"

	"sluice/reply"
)

// TestThrottleBurstIsOneDecrease: the refusals of one burst of sessions
// are one pause, and the limit comes down to the sessions the receiver
// took (issue 11: exact, not halved).
func TestThrottleBurstIsOneDecrease(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) { o.ThrottlePause = time.Second })
	const d = "dest.test"
	if got := admitN(p, d, 25); got != 20 {
		t.Fatalf("admitted %d, want 20 (default max)", got)
	}
	var first Decision
	for i := range 17 {
		dec := p.Observe(d, Outcome{Reply: tooManyConns, Attempts: 1})
		if i == 0 {
			first = dec
		}
		if !dec.EndSession || dec.Action != ActionRetry {
			t.Fatalf("refusal %d: %+v", i, dec)
		}
		c.Advance(10 * time.Millisecond)
	}
	s := mustState(t, p, d)
	if s.Concurrency != 3 || s.State != StatePaused {
		// 20 sessions opened, 17 refused: the receiver takes 3.
		t.Fatalf("after burst: %+v, want concurrency 3 paused", s)
	}
	start := newClock().Now()
	if want := start.Add(time.Second); !s.PausedUntil.Equal(want) {
		t.Errorf("paused until %v, want %v", s.PausedUntil, want)
	}
	if first.RetryAt.Before(s.PausedUntil) {
		t.Errorf("throttled recipient due %v before the pause ends %v", first.RetryAt, s.PausedUntil)
	}
	if ok, at := p.Admit(d); ok || !at.Equal(s.PausedUntil) {
		t.Errorf("Admit while paused = %v %v", ok, at)
	}
}

// TestThrottleFloorsAndProbe: after a pause one probe goes; a refusal of
// that probe (the receiver still blocks: nothing was sent during the
// pause, so no rate was overshot) lengthens the pause by the next
// backoff step and cuts nothing (issue 11: probing a penalty box must
// not teach a rate); the cut of the first refusal stays above the
// floors.
func TestThrottleFloorsAndProbe(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) {
		o.MaxConcurrency = 16
		o.MinConcurrency = 2
		o.Rate = 8
		o.MinRate = 2
		o.ThrottlePause = time.Second
		o.RetryMax = time.Minute
	})
	const d = "dest.test"
	wantConc := []int{8, 8, 8, 8}
	wantRate := []rate.Limit{4, 4, 4, 4}
	for i := range wantConc {
		n := admitN(p, d, 100)
		if i == 0 && n != 16 {
			t.Fatalf("first round admitted %d", n)
		}
		if i > 0 && n != 1 {
			t.Fatalf("round %d: admitted %d sessions after a pause, want 1 probe", i, n)
		}
		p.Observe(d, Outcome{Reply: reply.Reply{Stage: reply.StageMail, Code: 421, Enhanced: "4.7.0", Text: "go away"}, Attempts: 1})
		for range n {
			p.Release(d)
		}
		s := mustState(t, p, d)
		if s.Concurrency != wantConc[i] || s.Rate != wantRate[i] {
			t.Fatalf("round %d: concurrency %d rate %v, want %d %v", i, s.Concurrency, s.Rate, wantConc[i], wantRate[i])
		}
		// Pause steps back off: 1s, 2s, 4s, 8s (jitter factor 1).
		if got, want := s.PausedUntil.Sub(c.Now()), time.Second<<i; got != want {
			t.Errorf("round %d: pause %v, want %v", i, got, want)
		}
		c.Set(s.PausedUntil)
	}
}

func TestHardThrottleGoesToFloors(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) { o.Rate = 50; o.MinRate = 1 })
	const d = "outlook"
	admitN(p, d, 5)
	p.Observe(d, Outcome{Reply: reply.Reply{Stage: reply.StageMail, Code: 451, Enhanced: "4.7.650", Text: "The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation."}})
	s := mustState(t, p, d)
	if s.Concurrency != 1 || s.Rate != 1 {
		t.Errorf("hard throttle: concurrency %d rate %v, want 1 and 1", s.Concurrency, s.Rate)
	}
	// The limits are held for 90 minutes, then recover.
	c.Set(s.PausedUntil)
	p.Admit(d)
	send := func() { // as a session does: a token, then the message
		p.Admit(d)
		if w := p.Reserve(d); w > 0 {
			c.Advance(w)
			p.Reserve(d)
		}
		p.Observe(d, Outcome{Reply: accepted})
	}
	for range 100 {
		send()
		c.Advance(time.Second)
	}
	if s := mustState(t, p, d); s.Concurrency != 1 || s.Rate != 1 {
		t.Errorf("grew during the hold: %+v", s)
	}
	c.Advance(90 * time.Minute)
	for range 200 {
		send()
	}
	if s := mustState(t, p, d); s.Concurrency < 2 || s.Rate <= 1 {
		t.Errorf("no recovery after the hold: %+v", s)
	}
}

// TestAdditiveRecovery: after an unclear refusal ("busy": both limits
// halved) concurrency comes back one session per increase_after
// successes while it holds sessions back, and the rate through probes
// while it holds mail back, to the configured maxima and never beyond.
func TestAdditiveRecovery(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) { o.MaxConcurrency = 8; o.Rate = 20; o.MinRate = 1; o.IncreaseAfter = 5 })
	const d = "dest.test"
	admitN(p, d, 8)
	p.Observe(d, Outcome{Reply: reply.Reply{Stage: reply.StageMail, Code: 421, Text: "busy"}})
	for range 8 {
		p.Release(d)
	}
	s := mustState(t, p, d)
	if s.Concurrency != 4 || s.Rate != 10 {
		t.Fatalf("after cut: %d %v", s.Concurrency, s.Rate)
	}
	c.Set(s.PausedUntil)
	if admitN(p, d, 4) != 1 {
		t.Fatal("want exactly one probe")
	}
	p.Observe(d, Outcome{Reply: accepted, Rcpt: "a@dest.test"}) // probe ok: open
	if got := admitN(p, d, 10); got != 3 {
		t.Fatalf("after probe success admitted %d more, want 3 (concurrency 4)", got)
	}
	for range 4 {
		p.Observe(d, Outcome{Reply: accepted})
	}
	if s = mustState(t, p, d); s.Concurrency != 5 {
		t.Fatalf("after 5 successes: concurrency %d, want 5", s.Concurrency)
	}
	for range 2000 {
		c.Advance(20 * time.Millisecond)
		if ok, _ := p.Admit(d); ok {
			continue
		}
		if w := p.Reserve(d); w > 0 {
			continue
		}
		p.Observe(d, Outcome{Reply: accepted})
	}
	s = mustState(t, p, d)
	if s.Concurrency != 8 || s.Rate != 20 {
		t.Fatalf("after recovery: concurrency %d rate %v, want the maxima 8 20", s.Concurrency, s.Rate)
	}
}

func TestNoIncreaseWhenNotLimited(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) { o.MaxConcurrency = 8; o.IncreaseAfter = 2 })
	const d = "dest.test"
	admitN(p, d, 8)
	p.Observe(d, Outcome{Reply: tooManyConns})
	for range 8 {
		p.Release(d)
	}
	c.Set(mustState(t, p, d).PausedUntil)
	admitN(p, d, 1)
	cut := mustState(t, p, d).Concurrency
	for range 50 { // one session only, below the limit
		p.Observe(d, Outcome{Reply: accepted})
	}
	if s := mustState(t, p, d); s.Concurrency != cut {
		t.Errorf("concurrency grew from %d to %d without being the bottleneck", cut, s.Concurrency)
	}
}

// TestFirstRateCutFromObservedRate: with no rate configured, the first
// rate refusal learns the pace delivered just before it (with a 5 %
// margin), at once, and leaves concurrency alone; no message goes until
// the receiver's window has refilled.
func TestFirstRateCutFromObservedRate(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) { o.MinRate = 1 })
	const d = "dest.test"
	admitN(p, d, 2)
	if got := p.Reserve(d); got != 0 {
		t.Fatalf("unlimited Reserve = %v", got)
	}
	for range 40 { // 40 successes in 2 s: 20/s
		p.Observe(d, Outcome{Reply: accepted})
		c.Advance(50 * time.Millisecond)
	}
	p.Observe(d, Outcome{Reply: rateLimited})
	s := mustState(t, p, d)
	if s.Rate != 19 || s.Concurrency != 20 {
		t.Fatalf("after the first rate refusal: rate %v concurrency %d, want 19/s and untouched concurrency", s.Rate, s.Concurrency)
	}
	if got := p.Reserve(d); got != time.Second {
		t.Fatalf("Reserve right after the refusal = %v, want the second the window takes to refill", got)
	}
	c.Advance(time.Second)
	// The bucket holds one token (burst = rate/20 = 1).
	if got := p.Reserve(d); got != 0 {
		t.Fatalf("first Reserve = %v", got)
	}
	if got := p.Reserve(d); got <= 0 || got > 60*time.Millisecond {
		t.Fatalf("second Reserve = %v, want about 53ms", got)
	}
	// A cancelled reservation does not consume the token.
	c.Advance(60 * time.Millisecond)
	if got := p.Reserve(d); got != 0 {
		t.Fatalf("Reserve after waiting = %v", got)
	}
}

func TestRateCutWithoutEstimateCutsConcurrency(t *testing.T) {
	t.Parallel()
	p, _ := fixture(t)
	admitN(p, "d", 20)
	p.Observe("d", Outcome{Reply: rateLimited})
	if s := mustState(t, p, "d"); s.Rate != 0 || s.Concurrency != 10 {
		t.Errorf("rate %v concurrency %d, want unlimited and 10", s.Rate, s.Concurrency)
	}
}

// A receiver that allows K sessions: the relay must converge so that the
// refusals stop. Each session carries 5 messages, one per 10 ms tick.
func TestRefusalsStop(t *testing.T) {
	t.Parallel()
	const K = 3
	p, c := fixture(t, func(o *Options) { o.ThrottlePause = time.Second; o.RetryMax = 10 * time.Second; o.IncreaseAfter = 10 })
	const d = "mx.test"
	refusals, lateRefusals, delivered := 0, 0, 0
	var sessions []int // messages left per live session
	for tick := range 3000 {
		for {
			ok, _ := p.Admit(d)
			if !ok {
				break
			}
			if len(sessions) >= K {
				refusals++
				if tick >= 1500 {
					lateRefusals++
				}
				p.Observe(d, Outcome{Reply: reply.Reply{Stage: reply.StageGreeting, Code: 421, Text: "Too many sessions opened"}})
				p.Release(d)
				continue
			}
			sessions = append(sessions, 5)
		}
		live := sessions[:0]
		for _, left := range sessions {
			p.Observe(d, Outcome{Reply: accepted})
			delivered++
			if left > 1 {
				live = append(live, left-1)
			} else {
				p.Release(d)
			}
		}
		sessions = live
		c.Advance(10 * time.Millisecond)
	}
	t.Logf("delivered %d of an ideal %d, refusals %d (second half %d)", delivered, 3000*K, refusals, lateRefusals)
	if lateRefusals > 2 {
		t.Errorf("refusals did not stop: %d in the second half", lateRefusals)
	}
	if refusals > 8 {
		t.Errorf("%d refusals in total", refusals)
	}
	if delivered < 3000*K*3/4 {
		t.Errorf("delivered only %d of an ideal %d", delivered, 3000*K)
	}
}
