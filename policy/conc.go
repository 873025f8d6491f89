package policy

import "time"

// concAIMD is the additive increase, multiplicative decrease of a
// destination's concurrency (the number of sessions it may have open).
type concAIMD struct {
	level   int       // current limit
	ceil    ceiling   // concurrency at the last refusal: crossing it waits for the ceiling's hold
	lastCut time.Time // the last multiplicative decrease
	frozen  time.Time // no increase before (a throttle rule's `for`)
	limited bool      // the limit held sessions back since the last increase
}

// freeze holds the limit where it is until t (a throttle rule's `for`).
func (c *concAIMD) freeze(t time.Time) {
	if t.After(c.frozen) {
		c.frozen = t
	}
}

// due reports whether a refusal at now may cut again: one cut per window,
// since the refusals of one burst of sessions are one signal.
func (c *concAIMD) due(now time.Time, window time.Duration) bool {
	return c.lastCut.IsZero() || now.Sub(c.lastCut) >= window
}

// cut halves the limit (to floor when hard) from base, the sessions
// actually in flight when that is lower than the limit (as TCP cuts from
// the flight size, not the window), and remembers base as the ceiling.
func (c *concAIMD) cut(base int, hard bool, now time.Time, o *Options) {
	c.ceil.refused(float64(base), now, 2*o.ThrottlePause, o.RetryMax)
	n := base / 2
	if hard {
		n = o.MinConcurrency
	}
	c.level = max(n, o.MinConcurrency)
	c.lastCut = now
	c.limited = false
}

// grow is one additive step: +1 when the limit held sessions back since
// the last step and the ceiling allows it; a limit above max comes down.
// It reports a change.
func (c *concAIMD) grow(maxConc int, now time.Time) bool {
	switch {
	case now.Before(c.frozen) && c.level <= maxConc:
		return false
	case c.level < maxConc && c.limited && c.ceil.allows(float64(c.level+1), now):
		c.level++
		c.limited = false
		c.ceil.crossed(float64(c.level))
		return true
	case c.level > maxConc:
		c.level = maxConc
		return true
	}
	return false
}

// clamp brings the limit within max.
func (c *concAIMD) clamp(maxConc int) { c.level = min(c.level, maxConc) }
