package policy

import (
	"testing"
	"time"

	"golang.org/x/time/rate"

	"sluice/reply"
)

// TestReadyAnswersWhatMayStart (issue 10): Ready says how many sessions
// may open now and, when none may, when to ask again; it takes nothing.
func TestReadyAnswersWhatMayStart(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) { o.MaxConcurrency = 3 })
	if n, at := p.Ready("d.test"); n != 3 || !at.IsZero() {
		t.Fatalf("fresh destination: Ready = %d, %v; want 3 now", n, at)
	}
	if n, _ := p.Ready("d.test"); n != 3 {
		t.Fatalf("Ready took a slot: %d left", n)
	}
	if got := admitN(p, "d.test", 3); got != 3 {
		t.Fatalf("admitted %d", got)
	}
	if n, at := p.Ready("d.test"); n != 0 || !at.IsZero() {
		t.Fatalf("all slots busy: Ready = %d, %v; want 0, ask after a release", n, at)
	}
	p.Release("d.test")
	if n, _ := p.Ready("d.test"); n != 1 {
		t.Fatalf("after a release: Ready = %d", n)
	}
	// A throttle reply pauses: nothing until the pause ends, then one
	// probe, and nothing more while it is in flight.
	p.Observe("d.test", Outcome{Reply: tooManyConns, Attempts: 1})
	st := mustState(t, p, "d.test")
	if n, at := p.Ready("d.test"); n != 0 || !at.Equal(st.PausedUntil) {
		t.Fatalf("paused: Ready = %d, %v; want 0 until %v", n, at, st.PausedUntil)
	}
	for range 2 {
		p.Release("d.test") // the sessions above the lowered concurrency end
	}
	if !p.Paused("d.test") || !p.Continue("d.test") {
		t.Errorf("paused: Paused %v, Continue %v; want true, true (a pause stops new connections only)", p.Paused("d.test"), p.Continue("d.test"))
	}
	c.Set(st.PausedUntil)
	if n, at := p.Ready("d.test"); n != 1 || !at.IsZero() {
		t.Fatalf("pause over: Ready = %d, %v; want the probe", n, at)
	}
	if ok, _ := p.Admit("d.test"); !ok {
		t.Fatal("probe not admitted")
	}
	if n, at := p.Ready("d.test"); n != 0 || at.IsZero() {
		t.Fatalf("probe in flight: Ready = %d, %v; want 0 and a time to ask again", n, at)
	}
}

// TestReadyCountsRateTokens: with the token bucket empty, no session may
// open until the next token, and Ready says when that is.
func TestReadyCountsRateTokens(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) { o.MaxConcurrency, o.Rate = 5, rate.Limit(2) })
	if n, _ := p.Ready("d.test"); n != 1 {
		t.Fatalf("Ready = %d, want 1 (a burst of one token)", n)
	}
	if w := p.Reserve("d.test"); w != 0 {
		t.Fatalf("Reserve = %v", w)
	}
	n, at := p.Ready("d.test")
	if n != 0 || !at.Equal(c.Now().Add(500*time.Millisecond)) {
		t.Fatalf("no token left: Ready = %d, %v; want 0 until the next token in 500ms", n, at)
	}
	c.Set(at)
	if n, _ := p.Ready("d.test"); n != 1 {
		t.Fatalf("at the next token: Ready = %d", n)
	}
}

// TestContinueStopsOnSuspendAndShrink: an open session stops taking mail
// during a suspension, and the sessions above a lowered concurrency stop.
func TestContinueStopsOnSuspendAndShrink(t *testing.T) {
	t.Parallel()
	p, _ := fixture(t, func(o *Options) {
		o.MaxConcurrency = 4
		o.Rules = []Rule{{Match: "TSS04", Class: ClassSuspend, For: time.Hour}}
	})
	admitN(p, "d.test", 4)
	if !p.Continue("d.test") {
		t.Fatal("open destination: Continue false")
	}
	p.Observe("d.test", Outcome{Reply: rateLimited, Attempts: 1}) // halves concurrency
	if p.Continue("d.test") {
		t.Error("4 sessions above a lowered concurrency: Continue true")
	}
	p.Observe("d.test", Outcome{Reply: reply.Reply{Stage: reply.StageMail, Code: 421, Enhanced: "4.7.0", Text: "[TSS04] Messages temporarily deferred"}, Attempts: 1})
	for range 4 {
		p.Release("d.test")
	}
	if p.Continue("d.test") || !p.Paused("d.test") {
		t.Errorf("suspended: Continue %v Paused %v", p.Continue("d.test"), p.Paused("d.test"))
	}
}
