package policy

import (
	"log/slog"
	"maps"
	"os"
	"sync"
	"testing"
	"time"

	"sluice/config"
	"sluice/internal/fakeclock"
	"sluice/reply"
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

// testOptions are the options the daemon builds from the default config
// (OptionsFrom(config.Default())), with jitter factor 0.5 and a silent
// log, then the tweaks: a test states every value it depends on, and
// nothing is filled in behind its back.
func testOptions(tweaks ...func(*Options)) Options {
	o := OptionsFrom(config.Default())
	o.Rand = half
	o.Logger = slog.New(slog.DiscardHandler)
	if os.Getenv("POLICY_DEBUG") != "" { // a trace of the law's decisions on stderr
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	for _, f := range tweaks {
		f(&o)
	}
	return o
}

// fixture builds a policy on a fake clock from testOptions on the tests'
// time scale (retry 1 s..10 s, first throttle pause 1 s, one decrease per
// second) and without slow
// start (most tests study AIMD from full concurrency; slow start has its
// own), then tweaks.
func fixture(t *testing.T, tweaks ...func(*Options)) (*Policy, *fakeClock) {
	t.Helper()
	c := newClock()
	scale := func(o *Options) {
		o.Now = c.Now
		o.RetryBase, o.RetryMax, o.ThrottlePause, o.DecreaseWindow = time.Second, 10*time.Second, time.Second, time.Second
		o.InitialConcurrency = 0
	}
	return mustNew(t, testOptions(append([]func(*Options){scale}, tweaks...)...)), c
}

// fixtureOf is fixture for complete options.
func fixtureOf(t *testing.T, o Options) (*Policy, *fakeClock) {
	t.Helper()
	c := newClock()
	o.Now = c.Now
	return mustNew(t, o), c
}

func mustNew(t testing.TB, o Options) *Policy {
	t.Helper()
	p, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

var (
	tooManyConns = reply.Reply{Stage: reply.StageGreeting, Code: 421, Enhanced: "4.7.0", Text: "Too many connections"}
	rateLimited  = reply.Reply{Stage: reply.StageMail, Code: 421, Enhanced: "4.7.0", Text: "rate limit exceeded"}
	outage       = reply.Reply{Stage: reply.StageGreeting, Code: 421, Enhanced: "4.3.2", Text: "Service shutting down"}
	accepted     = reply.Reply{Stage: reply.StageDataEnd, Code: 250, Enhanced: "2.0.0", Text: "OK"}
	greylisted   = reply.Reply{Stage: reply.StageRcpt, Code: 450, Enhanced: "4.2.0", Text: "Recipient address rejected: Greylisted"}
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
