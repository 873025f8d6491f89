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
	// refused counts the sessions the receiver refused that have not
	// ended yet: until they do, the sessions it took may go on although
	// more are open than the limit (see Policy.Continue).
	refused int
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

// cut is the decrease after a refusal of a session, from base sessions
// in flight: the limit becomes the sessions the receiver took (base − 1)
// when the refusal named connections (exact) and half of base when it was
// unclear (AIMD), the floor when hard; base is remembered as the
// ceiling.
func (c *concAIMD) cut(base int, exact, hard, wary bool, now time.Time, o *Options) {
	first := 2 * o.ThrottlePause
	if wary {
		// A receiver that punishes refusals sees the crossing attempt
		// at most once per probeGapMax, as the rate's probes.
		first = max(first, probeGapMax)
	}
	c.ceil.refused(float64(base), now, first, max(o.RetryMax, first))
	n := base / 2
	switch {
	case hard:
		n = o.MinConcurrency
	case exact:
		n = base - 1
		c.refused = 1
	}
	c.level = max(n, o.MinConcurrency)
	c.lastCut = now
	c.limited = false
}

// refusedAgain is a refusal of a session soon after a cut, by a session
// that was already opening when the first was refused: one more session
// than the receiver takes, so the limit comes down by one (at most to
// active − 1), and the ceiling to the level just refused.
func (c *concAIMD) refusedAgain(active int, o *Options) {
	c.level = max(min(c.level-1, active-1), o.MinConcurrency)
	c.refused++
	if c.ceil.level > float64(c.level+1) {
		c.ceil.level = float64(c.level + 1)
	}
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

// ended is the end of a session: the refused ones end first.
func (c *concAIMD) ended() { c.refused = max(c.refused-1, 0) }

// allows reports whether active sessions may go on (Policy.Continue):
// those above the limit drain away after a cut, except the ones a
// receiver refused, which end by themselves.
func (c *concAIMD) allows(active int) bool { return active <= c.level+c.refused }

// clamp brings the limit within max.
func (c *concAIMD) clamp(maxConc int) { c.level = min(c.level, maxConc) }
