// Package clock is the time source of code that waits: the current time
// and timers. The daemon uses Real; tests inject internal/fakeclock, whose
// timers fire only when the test moves time, so that timed behaviour is
// tested without sleeping.
package clock

import "time"

// Clock tells the time and starts timers. Implementations are safe for
// concurrent use.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer whose channel receives the time once, d
	// from now.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f in its own goroutine d from now.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a started timer.
type Timer interface {
	// C is the channel of a NewTimer timer (nil for AfterFunc).
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
	// Reset makes the timer fire d from now (again).
	Reset(d time.Duration)
}

// Real is the system clock.
var Real Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return realTimer{time.AfterFunc(d, f)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) {
	// Since Go 1.23 Reset also drains a fired, unread channel.
	r.t.Reset(d)
}
