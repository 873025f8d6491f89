package warngate

import (
	"strconv"
	"testing"
	"time"
)

func TestGateOneLinePerKeyPerInterval(t *testing.T) {
	t.Parallel()
	for _, every := range []time.Duration{time.Minute, 10 * time.Minute} {
		g := New(every)
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		steps := []struct {
			key     string
			at      time.Duration
			ok      bool
			skipped int
		}{
			{"a.test", 0, true, 0},
			{"a.test", time.Second, false, 0},
			{"b.test", 2 * time.Second, true, 0},
			{"a.test", every / 2, false, 0},
			{"a.test", every, true, 2},
			{"a.test", every + time.Second, false, 0},
		}
		for i, s := range steps {
			ok, skipped := g.Allow(s.key, t0.Add(s.at))
			if ok != s.ok || skipped != s.skipped {
				t.Errorf("every %v step %d (%s at %v): ok=%v skipped=%d, want %v %d", every, i, s.key, s.at, ok, skipped, s.ok, s.skipped)
			}
		}
	}
}

func TestGateBounded(t *testing.T) {
	t.Parallel()
	g := New(time.Hour)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 * maxKeys {
		g.Allow(strconv.Itoa(i), now)
	}
	if n := len(g.last); n > maxKeys {
		t.Fatalf("%d keys kept, want at most %d", n, maxKeys)
	}
}
