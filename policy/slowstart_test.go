package policy

import (
	"testing"
	"time"

	"sluice/reply"
)

// TestSlowStart: a new destination starts with InitialConcurrency sessions
// and gains one per success until the maximum; the first refusal ends slow
// start with an ordinary multiplicative decrease.
func TestSlowStart(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p, err := New(testOptions(func(o *Options) {
		o.InitialConcurrency = 1
		o.MaxConcurrency = 8
		o.Now = func() time.Time { return now }
		o.Rand = func() float64 { return 0.5 }
	}))
	if err != nil {
		t.Fatal(err)
	}
	ok := func() {
		p.Observe("d.test", Outcome{Reply: reply.Reply{Stage: reply.StageDataEnd, Code: 250}, Rcpt: "a@d.test", Attempts: 1})
	}
	if st, _ := p.State("d.test"); st.Concurrency != 0 {
		// Unknown until first use.
		t.Logf("state before use: %+v", st)
	}
	if a, _ := p.Admit("d.test"); !a {
		t.Fatal("first session refused")
	}
	if a, _ := p.Admit("d.test"); a {
		t.Fatal("second session admitted before any success")
	}
	for i := 2; i <= 10; i++ {
		ok()
		st, _ := p.State("d.test")
		if want := min(i, 8); st.Concurrency != want {
			t.Fatalf("after %d successes concurrency %d, want %d", i-1, st.Concurrency, want)
		}
	}
	// Back in slow start? No: the maximum ended it; a refusal halves.
	now = now.Add(time.Second)
	p.Observe("d.test", Outcome{Reply: reply.Reply{Stage: reply.StageGreeting, Code: 421, Enhanced: "4.7.0", Text: "Too many connections"}, Attempts: 1})
	if st, _ := p.State("d.test"); st.Concurrency >= 8 {
		t.Fatalf("refusal did not cut: %d", st.Concurrency)
	}
}
