package auth

import (
	"testing"
	"time"
)

func TestWarnGateOneLinePerDomainPerMinute(t *testing.T) {
	t.Parallel()
	var g warnGate
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		domain  string
		at      time.Duration
		ok      bool
		skipped int
	}{
		{"a.test", 0, true, 0},
		{"a.test", time.Second, false, 0},
		{"b.test", 2 * time.Second, true, 0},
		{"a.test", 30 * time.Second, false, 0},
		{"a.test", time.Minute, true, 2},
		{"a.test", time.Minute + time.Second, false, 0},
	}
	for i, s := range steps {
		ok, skipped := g.allow(s.domain, t0.Add(s.at))
		if ok != s.ok || skipped != s.skipped {
			t.Errorf("step %d (%s at %v): ok=%v skipped=%d, want %v %d", i, s.domain, s.at, ok, skipped, s.ok, s.skipped)
		}
	}
}
