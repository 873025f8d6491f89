package policy

import (
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"sluice/reply"
)

// TestReconfigureDestinations: a reload that changes [[policy.destination]]
// and the global limits applies them to destinations already in memory
// (levels above the new maxima come down at once), while what each
// destination learned stays (issue 12 item 1).
func TestReconfigureDestinations(t *testing.T) {
	t.Parallel()
	p, clk := fixture(t, func(o *Options) {
		o.MaxConcurrency = 20
		o.Destinations = []DestinationOptions{{Match: "a.test", MaxConcurrency: 10}}
	})
	p.Group("a.test", nil, nil)
	p.Group("b.test", nil, nil)
	p.Group("c.test", nil, nil)
	admitN(p, "a.test", 1)
	admitN(p, "b.test", 1)
	p.Observe("c.test", Outcome{Reply: outage}) // c.test learns a pause
	paused := mustState(t, p, "c.test")
	if paused.State != StatePaused {
		t.Fatalf("c.test: %s, want paused", paused.State)
	}

	o := p.o
	o.MaxConcurrency = 8
	o.Destinations = []DestinationOptions{{Match: "a.test", MaxConcurrency: 2, Rate: 5}, {Match: "b.test", MaxConcurrency: 30}}
	if err := p.Reconfigure(o); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dest     string
		conc     int
		maxRate  rate.Limit
		learnedC int
	}{
		{"a.test", 2, 5, 2},   // the override lowered: the level comes down at once
		{"b.test", 30, 0, 20}, // raised: additive increase climbs to it
		{"c.test", 8, 0, 8},   // the global maximum lowered
	} {
		s := mustState(t, p, c.dest)
		if s.MaxConcurrency != c.conc || s.MaxRate != c.maxRate || s.Concurrency > c.learnedC {
			t.Errorf("%s after reload: max %d rate %v level %d, want max %d rate %v level <= %d",
				c.dest, s.MaxConcurrency, float64(s.MaxRate), s.Concurrency, c.conc, float64(c.maxRate), c.learnedC)
		}
	}
	if s := mustState(t, p, "c.test"); s.State != StatePaused || !s.PausedUntil.Equal(paused.PausedUntil) {
		t.Errorf("the pause c.test learned did not survive the reload: %+v", s)
	}
	if got := admitN(p, "a.test", 10); got > 1 { // one admitted before the reload
		t.Errorf("a.test admitted %d more sessions, max is 2 with one open", got)
	}
	// A destination first seen after the reload starts from the new config.
	p.Group("d.test", nil, nil)
	clk.Advance(time.Second)
	if s := mustState(t, p, "b.test"); s.MaxConcurrency != 30 {
		t.Errorf("b.test max %d", s.MaxConcurrency)
	}
}

// TestReconfigureKeepsRuntimeLimits: limits set at run time (`limits set`)
// survive a reload and win over a changed [[policy.destination]] until
// `limits reset`, which brings the reloaded config in force.
func TestReconfigureKeepsRuntimeLimits(t *testing.T) {
	t.Parallel()
	p, _ := fixture(t, func(o *Options) {
		o.Destinations = []DestinationOptions{{Match: "a.test", MaxConcurrency: 10}}
	})
	if err := p.SetLimits("a.test", Limits{MaxConcurrency: 4, Rate: 3}); err != nil {
		t.Fatal(err)
	}
	o := p.o
	o.Destinations = []DestinationOptions{{Match: "a.test", MaxConcurrency: 7, Rate: 9}}
	if err := p.Reconfigure(o); err != nil {
		t.Fatal(err)
	}
	if s := mustState(t, p, "a.test"); s.MaxConcurrency != 4 || s.MaxRate != 3 {
		t.Errorf("after reload: max %d rate %v, want the runtime limits 4 and 3", s.MaxConcurrency, float64(s.MaxRate))
	}
	if err := p.ResetLimits("a.test"); err != nil {
		t.Fatal(err)
	}
	if s := mustState(t, p, "a.test"); s.MaxConcurrency != 7 || s.MaxRate != 9 {
		t.Errorf("after limits reset: max %d rate %v, want the reloaded override 7 and 9", s.MaxConcurrency, float64(s.MaxRate))
	}
}

// TestReconfigureRulesAndTimings: new rules classify the next reply and
// new timings drive the next decision.
func TestReconfigureRulesAndTimings(t *testing.T) {
	t.Parallel()
	p, _ := fixture(t)
	odd := reply.Reply{Stage: reply.StageRcpt, Code: 451, Text: "odd wording from a receiver"}
	if v := p.Classify(odd); v.Class == ClassThrottle {
		t.Fatalf("throttle before any rule: %+v", v)
	}
	o := p.o
	o.Rules = []Rule{{Match: "odd wording", Class: ClassThrottle}}
	o.MaxHint = time.Minute
	if err := p.Reconfigure(o); err != nil {
		t.Fatal(err)
	}
	if v := p.Classify(odd); v.Class != ClassThrottle || v.Rule != "config:1" {
		t.Errorf("after reload: %+v, want the config rule's throttle", v)
	}
	if v := p.Classify(reply.Reply{Stage: reply.StageRcpt, Code: 450, Text: "mailbox busy, try again in 2 hours"}); v.Delay > time.Minute {
		t.Errorf("hint %v above the reloaded max_hint", v.Delay)
	}
}

// TestReconfigureRefusesAndChangesNothing: a bad rule, bad bounds or a
// change of the grouping refuse the whole reload.
func TestReconfigureRefusesAndChangesNothing(t *testing.T) {
	t.Parallel()
	p, _ := fixture(t, func(o *Options) { o.MaxConcurrency = 20 })
	admitN(p, "x.test", 1)
	for name, tweak := range map[string]func(*Options){
		"bad rule":   func(o *Options) { o.Rules = []Rule{{Match: "(", Class: ClassThrottle}} },
		"bad bounds": func(o *Options) { o.MinConcurrency = 50 },
		"group_by":   func(o *Options) { o.GroupBy = "domain" },
		"providers":  func(o *Options) { o.Providers = []Provider{{Name: "x", Suffixes: []string{".x.test"}}} },
		"dup override": func(o *Options) {
			o.Destinations = []DestinationOptions{{Match: "a", MaxConcurrency: 1}, {Match: "A", MaxConcurrency: 2}}
		},
		"negative limit": func(o *Options) { o.Destinations = []DestinationOptions{{Match: "a", MaxConcurrency: -1}} },
	} {
		o := p.o
		o.MaxConcurrency = 3
		tweak(&o)
		err := p.Reconfigure(o)
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		if (name == "group_by" || name == "providers") && !errors.Is(err, ErrNeedsRestart) {
			t.Errorf("%s: %v, want ErrNeedsRestart", name, err)
		}
		if s := mustState(t, p, "x.test"); s.MaxConcurrency != 20 {
			t.Errorf("%s: max concurrency %d after a refused reload", name, s.MaxConcurrency)
		}
	}
}

// TestReconfigureWhileDelivering runs reloads against concurrent use, for
// the race detector.
func TestReconfigureWhileDelivering(t *testing.T) {
	t.Parallel()
	p, _ := fixture(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if ok, _ := p.Admit("a.test"); ok {
					p.Observe("a.test", Outcome{Reply: accepted, Rcpt: "x@a.test"})
					p.Release("a.test")
				}
				p.Classify(rateLimited)
				p.Destination("b.test", nil)
				p.OverrideDomains()
			}
		}()
	}
	for i := range 50 {
		o := p.o
		o.MaxConcurrency = 5 + i%3
		o.Rules = []Rule{{Match: "x" + string(rune('a'+i%26)), Class: ClassThrottle}}
		if err := p.Reconfigure(o); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}
