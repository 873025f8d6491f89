// Package fakeclock is the injected clock of the tests: time moves only
// when a test says so. Every package takes a `Now func() time.Time`
// option (pass Clock.Now) or a clock.Clock (pass the Clock): its timers
// fire when Advance or Set moves the time past them, never on their own.
// Safe for concurrent use.
package fakeclock

import (
	"sort"
	"sync"
	"time"

	"sluice/internal/clock"
)

// Start is where every fake clock begins unless a test sets it.
var Start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Clock is a settable clock with timers.
type Clock struct {
	mu     sync.Mutex
	t      time.Time
	timers map[*timer]struct{}
	armed  chan struct{} // closed and replaced whenever a timer is armed
}

var _ clock.Clock = (*Clock)(nil)

// New returns a clock at Start.
func New() *Clock {
	return &Clock{t: Start, timers: map[*timer]struct{}{}, armed: make(chan struct{})}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d, fires the timers due by then (in
// time order) and returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	t := c.t.Add(d)
	c.mu.Unlock()
	c.Set(t)
	return t
}

// Set puts the clock at t and fires the timers due by then, in time
// order: a channel timer gets t on its channel, an AfterFunc timer runs
// its function in a goroutine, as the real ones do.
func (c *Clock) Set(t time.Time) {
	// The due times are read under the lock: a timer fired here may be
	// Reset at once by its owner (a scheduler loop re-arming its wake-up),
	// which writes tm.at under the lock.
	type dueTimer struct {
		tm *timer
		at time.Time
	}
	c.mu.Lock()
	c.t = t
	var due []dueTimer
	for tm := range c.timers {
		if !tm.at.After(t) {
			due = append(due, dueTimer{tm, tm.at})
			delete(c.timers, tm)
		}
	}
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, d := range due {
		d.tm.fire(t)
	}
}

// NextTimer returns the time of the earliest armed timer (ok=false: none).
func (c *Clock) NextTimer() (at time.Time, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for tm := range c.timers {
		if !ok || tm.at.Before(at) {
			at, ok = tm.at, true
		}
	}
	return at, ok
}

// Armed returns a channel that is closed the next time a timer is armed
// (NewTimer, AfterFunc, Reset): a test waits on it for code that is about
// to sleep.
func (c *Clock) Armed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.armed
}

// NewTimer returns a timer whose channel receives once, d from now.
func (c *Clock) NewTimer(d time.Duration) clock.Timer {
	tm := &timer{c: c, ch: make(chan time.Time, 1)}
	tm.Reset(d)
	return tm
}

// AfterFunc runs f in a goroutine once the clock reaches d from now.
func (c *Clock) AfterFunc(d time.Duration, f func()) clock.Timer {
	tm := &timer{c: c, f: f}
	tm.Reset(d)
	return tm
}

type timer struct {
	c  *Clock
	ch chan time.Time
	f  func()
	at time.Time
}

func (tm *timer) C() <-chan time.Time { return tm.ch }

func (tm *timer) Stop() bool {
	tm.c.mu.Lock()
	defer tm.c.mu.Unlock()
	_, armed := tm.c.timers[tm]
	delete(tm.c.timers, tm)
	return armed
}

func (tm *timer) Reset(d time.Duration) {
	c := tm.c
	c.mu.Lock()
	tm.at = c.t.Add(d)
	if tm.ch != nil {
		// As time.Timer since Go 1.23: no stale value after a Reset.
		select {
		case <-tm.ch:
		default:
		}
	}
	fireNow := d <= 0
	if !fireNow {
		c.timers[tm] = struct{}{}
	} else {
		delete(c.timers, tm)
	}
	close(c.armed)
	c.armed = make(chan struct{})
	now := c.t
	c.mu.Unlock()
	if fireNow {
		tm.fire(now)
	}
}

func (tm *timer) fire(t time.Time) {
	if tm.f != nil {
		go tm.f()
		return
	}
	select {
	case tm.ch <- t:
	default:
	}
}
