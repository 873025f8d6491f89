package policy

import (
	"testing"
	"time"

	"sluice/reply"
)

// TestRateRefusalAfterConnectionCutStillCutsRate: one decrease per window
// and per kind. A burst of "too many connections" cuts concurrency once;
// a rate refusal that follows within the window, while the destination is
// paused, is news about the other limit and cuts the rate, without
// lengthening the pause.
func TestRateRefusalAfterConnectionCutStillCutsRate(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) { o.Rate = 100; o.MaxConcurrency = 8; o.DecreaseWindow = 2 * time.Second })
	const d = "kinds.test"
	for range 8 {
		if ok, _ := p.Admit(d); !ok {
			t.Fatal("not admitted")
		}
	}
	tooMany := reply.Reply{Stage: reply.StageGreeting, Code: 421, Enhanced: "4.7.0", Text: "Too many connections from your IP"}
	rateLimited := reply.Reply{Stage: reply.StageMail, Code: 421, Enhanced: "4.7.0", Text: "Rate limit exceeded, try again later"}
	for range 5 {
		p.Observe(d, Outcome{Reply: tooMany, Attempts: 1})
	}
	st := mustState(t, p, d)
	if st.Concurrency != 3 || st.Rate != 100 {
		// 8 sessions opened, 5 refused: the receiver takes 3.
		t.Fatalf("after the connection burst: concurrency %d rate %v, want 3 and 100", st.Concurrency, st.Rate)
	}
	paused := st.PausedUntil
	c.Advance(100 * time.Millisecond)
	p.Observe(d, Outcome{Reply: rateLimited, Rcpt: "a@kinds.test", Attempts: 1})
	p.Observe(d, Outcome{Reply: rateLimited, Rcpt: "b@kinds.test", Attempts: 1})
	st = mustState(t, p, d)
	if st.Rate != 50 || st.Concurrency != 3 {
		t.Fatalf("after the rate refusals: concurrency %d rate %v, want 3 and 50 (one rate cut)", st.Concurrency, st.Rate)
	}
	if !st.PausedUntil.Equal(paused) {
		t.Errorf("the pause moved from %v to %v", paused, st.PausedUntil)
	}
}
