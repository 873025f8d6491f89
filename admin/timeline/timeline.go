// Package timeline keeps the last hour of each busy destination's
// control loop at 10-second resolution, for the dashboard: the
// concurrency and rate limits the policy sets and their ceilings, the
// sessions in use, the transactions started, the deliveries, the 421s
// and the other refusals, and when the destination was paused.
//
// Promises: memory is fixed per destination (Points steps, maxBands
// pauses, about 16 KB) and the number of destinations is bounded (New's
// max), whatever the number of destinations sluice delivers to: when an
// attempt at a new destination needs room, the destination idle longest
// gives its rings up (cleared and reused, not reallocated), and a
// destination's memory is released as soon as the policy drops it (it
// has been idle for policy.IdleAfter, longer than the hour shown).
// Nothing here reads the queue: attempts are counted as the scheduler
// reports them, and the policy's state is read once per Step by Run, on
// the injected clock, and after a refusal (at most once a second per
// destination). A Recorder is safe for concurrent use; no method blocks
// on anything but its mutex.
package timeline

import (
	"context"
	"sync"
	"time"

	"sluice/internal/clock"
)

const (
	// Step is the resolution of the chart.
	Step = 10 * time.Second
	// Points is the number of steps kept per destination: one hour.
	Points = 360
	// readEvery bounds the extra readings of the policy after a refusal,
	// per destination: a receiver that refuses every recipient of a
	// large batch costs one reading, not one per recipient.
	readEvery = time.Second
)

// State is what the policy lets a destination do, ordered by how little:
// a step keeps the most restrictive state read in it.
type State uint8

const (
	Open      State = iota // sessions as the limits allow
	Probing                // half-open after a pause: one session tries first
	Paused                 // no session until PausedUntil (a throttle, an outage)
	Suspended              // no session until PausedUntil (a block, a policy refusal)
)

// letter is the state as the chart's JSON spells it (see Series.State).
func (s State) letter() byte {
	return "ohps"[s]
}

func (s State) String() string {
	return [...]string{"open", "probing", "paused", "suspended"}[s]
}

// Sample is one reading of a destination's state in the policy.
type Sample struct {
	Name                                string
	State                               State
	PausedUntil                         time.Time // Paused, Suspended: when the policy lets sessions start again
	Concurrency, MaxConcurrency, Active int
	Rate, MaxRate                       float64 // messages/s; 0 = unlimited
}

// Outcome is what an attempt came to, as the chart counts it.
type Outcome uint8

const (
	Sent     Outcome = iota // delivered
	Reply421                // refused with a 421 (RFC 5321 4.2.3: service not available, closing the channel)
	Refused                 // any other deferral, bounce or expiry
)

// dest is one tracked destination.
type dest struct {
	ring  ring
	bands bands
	// used is the last time the destination did something: an attempt,
	// sessions open, or a pause. The least recently used gives way when
	// the recorder is full.
	used time.Time
	// read is when the policy was last read for it after a refusal.
	read time.Time
}

// Recorder is the set of rings.
type Recorder struct {
	mu    sync.Mutex
	now   func() time.Time
	max   int // destinations tracked at most
	dests map[string]*dest
}

// New returns a recorder of at most limit destinations (at least 1).
// now nil = time.Now.
func New(limit int, now func() time.Time) *Recorder {
	if now == nil {
		now = time.Now
	}
	return &Recorder{now: now, max: max(limit, 1), dests: map[string]*dest{}}
}

// track returns the rings of name, or nil when it has none and there is
// no room for it. When the recorder is full and evict is set, the
// destination used least recently gives its rings up, and they are
// cleared and reused: the memory of the recorder is allocated once per
// place, however many destinations come and go. Caller holds r.mu.
func (r *Recorder) track(name string, now time.Time, evict bool) *dest {
	if d := r.dests[name]; d != nil {
		return d
	}
	var d *dest
	if len(r.dests) >= r.max {
		if !evict {
			return nil
		}
		var oldest string
		for n, x := range r.dests {
			if d == nil || x.used.Before(d.used) || (x.used.Equal(d.used) && n < oldest) {
				oldest, d = n, x
			}
		}
		delete(r.dests, oldest)
		*d = dest{}
	} else {
		d = new(dest)
	}
	d.used = now
	r.dests[name] = d
	return d
}

// Observe counts one recipient's attempt at dest. first marks the first
// recipient of its transaction: the transactions are what the rate
// limit meters, so the chart's rate in use counts those.
func (r *Recorder) Observe(dest string, o Outcome, first bool) {
	now := r.now()
	slot := slotOf(now)
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.track(dest, now, true)
	d.used = now
	p := d.ring.at(slot)
	if first {
		inc(&p.msgs)
	}
	switch o {
	case Sent:
		inc(&p.sent)
	case Reply421:
		inc(&p.r421)
	default:
		inc(&p.refused)
	}
}

// WantReading reports whether the policy should be read for dest after a
// refusal (see Record): the destination is tracked and was not read
// within the last readEvery. It counts the reading as done.
func (r *Recorder) WantReading(dest string) bool {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.dests[dest]
	if d == nil || now.Sub(d.read) < readEvery {
		return false
	}
	d.read = now
	return true
}

// Record folds one reading of a tracked destination into its current
// step; an untracked destination is tracked when it has sessions open or
// is paused (it is doing something the chart should show) and the
// recorder has room.
func (r *Recorder) Record(s Sample) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record(now, s)
}

// record: caller holds r.mu.
func (r *Recorder) record(now time.Time, s Sample) {
	busy := s.Active > 0 || s.State >= Paused
	d := r.dests[s.Name]
	if d == nil {
		if !busy {
			return
		}
		// A reading takes free room only: thousands of destinations
		// paused at once must not churn the rings of those that deliver.
		// A destination gets its rings by evicting with its attempts.
		if d = r.track(s.Name, now, false); d == nil {
			return
		}
	}
	if busy {
		d.used = now
	}
	d.ring.at(slotOf(now)).record(s)
	d.bands.record(now, s)
}

// Sample folds a reading of every destination the policy holds in
// memory, taken at at, into the rings, and releases the rings of tracked
// destinations that the policy no longer holds: it drops a destination
// only after policy.IdleAfter without use, so the hour shown was empty.
// A destination first used after at is kept: the reading predates it.
func (r *Recorder) Sample(at time.Time, all []Sample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	held := make(map[string]bool, len(all))
	for _, s := range all {
		held[s.Name] = true
		r.record(at, s)
	}
	for name, d := range r.dests {
		if !held[name] && d.used.Before(at) {
			delete(r.dests, name)
		}
	}
}

// Len is the number of destinations tracked.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.dests)
}

// Run reads the policy (read returns every destination it holds) at the
// start of every Step until ctx ends, on clk: a fake clock in tests, so
// that the chart's times are the clock's.
func (r *Recorder) Run(ctx context.Context, clk clock.Clock, read func() []Sample) {
	for {
		at := clk.Now()
		r.Sample(at, read())
		// The next step boundary: readings land at the start of each
		// step, so the newest point always has one.
		wait := Step - time.Duration(at.UnixNano()-slotOf(at)*int64(Step))
		t := clk.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}
