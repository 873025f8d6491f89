package policy

import (
	"testing"
	"time"

	"sluice/reply"
)

func TestResumeEndsPauseWithOneProbe(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p, err := New(testOptions(func(o *Options) {
		o.RetryBase = time.Minute
		o.RetryMax = time.Hour
		o.Now = func() time.Time { return now }
		o.Rand = func() float64 { return 0.5 }
	}))
	if err != nil {
		t.Fatal(err)
	}
	if p.Resume("dest.test") {
		t.Fatal("Resume of an unknown destination reported a pause")
	}
	ok, _ := p.Admit("dest.test")
	if !ok {
		t.Fatal("fresh destination not admitted")
	}
	p.Observe("dest.test", Outcome{Reply: reply.Reply{Stage: reply.StageGreeting, Code: 421, Enhanced: "4.3.2", Text: "Service not available"}, Attempts: 1})
	p.Release("dest.test")
	if ok, at := p.Admit("dest.test"); ok || at.IsZero() {
		t.Fatalf("paused destination admitted: ok=%v at=%v", ok, at)
	}
	if !p.Resume("dest.test") {
		t.Fatal("Resume did not see the pause")
	}
	if ok, _ := p.Admit("dest.test"); !ok {
		t.Fatal("no probe after Resume")
	}
	if ok, _ := p.Admit("dest.test"); ok {
		t.Fatal("a second session was admitted while the probe is in flight")
	}
}
