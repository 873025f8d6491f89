package scheduler

import (
	"context"
	"time"
)

// DestView is the scheduler's own view of one destination at one
// instant: what it knows is due there, what it holds and what runs.
type DestView struct {
	Name string
	// Head is the earliest due time of the destination's queued work, as
	// the queue's due feed told the loop (zero: nothing queued).
	Head     time.Time
	Ready    int       // leased jobs waiting for a session
	Sessions int       // open sessions, idle ones included
	Idle     int       // sessions waiting for a job
	Leasing  bool      // a lease for it is in flight
	AskAt    time.Time // when policy said to ask again (zero: at once, or after a session ends)
}

// Inspect returns the loop's view of every destination it holds, taken
// on the loop between two turns (nil once the scheduler stops, or when
// ctx ends first). It lets the virtual-time simulator (internal/sim)
// measure starvation from the scheduler's own state: due work at a
// destination that policy would admit, left unstarted.
func (s *Scheduler) Inspect(ctx context.Context) []DestView {
	ch := make(chan []DestView, 1)
	select {
	case s.inspect <- ch:
	case <-s.stopped:
		return nil
	case <-ctx.Done():
		return nil
	}
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		return nil
	}
}

// views answers Inspect. Called by the loop.
func (s *Scheduler) views() []DestView {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]DestView, 0, len(s.dests))
	for _, d := range s.dests {
		v := DestView{Name: d.name, Ready: len(d.ready), Sessions: d.sessions, Idle: d.idle, Leasing: d.queued, AskAt: d.askAt}
		if h, ok := d.head(); ok {
			v.Head = h
		}
		out = append(out, v)
	}
	return out
}
