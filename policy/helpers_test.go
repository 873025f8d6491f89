package policy

import (
	"log/slog"
	"maps"
	"sluice/internal/fakeclock"
	"sync"
	"testing"
	"time"
)

// fakeClock is the shared test clock (internal/fakeclock).
type fakeClock = fakeclock.Clock

func newClock() *fakeClock { return fakeclock.New() }

// memStore is a StateStore in memory.
type memStore struct {
	mu    sync.Mutex
	m     map[string][]byte
	saves int
	loads int
}

func (s *memStore) LoadDestinations() (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m), nil
}

func (s *memStore) LoadDestination(name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads++
	return s.m[name], nil
}

func (s *memStore) SaveDestination(name string, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[name] = append([]byte(nil), b...)
	s.saves++
	return nil
}

func half() float64 { return 0.5 }

// fixture builds a policy with a fake clock and jitter factor 1.
func fixture(t *testing.T, o Options) (*Policy, *fakeClock) {
	t.Helper()
	c := newClock()
	o.Now = c.Now
	if o.Rand == nil {
		o.Rand = half
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RetryBase == 0 {
		o.RetryBase = time.Second
	}
	if o.RetryMax == 0 {
		o.RetryMax = 10 * time.Second
	}
	return newTestPolicy(t, o), c
}

var (
	tooManyConns = Reply{Stage: StageGreeting, Code: 421, Enhanced: "4.7.0", Text: "Too many connections"}
	rateLimited  = Reply{Stage: StageMail, Code: 421, Enhanced: "4.7.0", Text: "rate limit exceeded"}
	outage       = Reply{Stage: StageGreeting, Code: 421, Enhanced: "4.3.2", Text: "Service shutting down"}
	accepted     = Reply{Stage: StageDataEnd, Code: 250, Enhanced: "2.0.0", Text: "OK"}
	greylisted   = Reply{Stage: StageRcpt, Code: 450, Enhanced: "4.2.0", Text: "Recipient address rejected: Greylisted"}
)

func mustState(t *testing.T, p *Policy, dest string) DestinationState {
	t.Helper()
	s, ok := p.State(dest)
	if !ok {
		t.Fatalf("State(%q): unknown", dest)
	}
	return s
}

// admitN admits up to n sessions and returns how many were granted.
func admitN(p *Policy, dest string, n int) int {
	got := 0
	for range n {
		if ok, _ := p.Admit(dest); ok {
			got++
		}
	}
	return got
}
