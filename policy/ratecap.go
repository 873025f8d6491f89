package policy

import (
	"time"

	"golang.org/x/time/rate"
)

// rateCeiling is the one gate on rate growth. It owns everything learned
// from rate refusals: the level crossed only after a hold (cross), the
// delivered pace at the last refusal (refusedAt), when the next step near
// it may go (probeAt), the pace above which a learned cap is lifted when
// no rate is configured (top), the last cut and a throttle rule's hold.
// The rate AIMD asks it for every cut and every step.
type rateCeiling struct {
	cross     ceiling
	refusedAt rate.Limit // delivered pace at the last rate refusal: growth above it is linear
	probeAt   time.Time  // near refusedAt, the next step waits until then
	top       rate.Limit // with no configured cap: at this rate the cap is lifted again
	lastCut   time.Time  // the last multiplicative decrease
	frozen    time.Time  // no growth before (a throttle rule's `for`)
}

// due reports whether a rate refusal at now may cut again: one cut per
// window.
func (c *rateCeiling) due(now time.Time, window time.Duration) bool {
	return c.lastCut.IsZero() || now.Sub(c.lastCut) >= window
}

// freeze holds the rate where it is until t.
func (c *rateCeiling) freeze(t time.Time) {
	if t.After(c.frozen) {
		c.frozen = t
	}
}

// refused records a rate refusal while sending at cur (0 = unlimited)
// with obs the pace delivered just before, and returns the cut rate. The
// cut starts from what was delivered when that is below cur (as TCP cuts
// from the flight size): a cap that grew above the receiver's limit says
// nothing about the limit. With no cap and no estimate it returns ok =
// false: nothing is known about the rate, and the caller cuts
// concurrency instead, since sessions bound the rate too.
func (c *rateCeiling) refused(cur, obs rate.Limit, hard bool, now time.Time, o *Options) (next rate.Limit, ok bool) {
	base := cur
	if base <= 0 {
		base = obs
		c.top = 2 * base
	} else if obs > 0 && obs < base {
		base = obs
	}
	if base <= 0 {
		return 0, false
	}
	c.refusedAt = base
	c.cross.refused(float64(base), now, 2*o.ThrottlePause, o.RetryMax)
	c.lastCut = now
	next = base / 2
	if hard {
		next = o.MinRate
	}
	return max(next, o.MinRate), true
}

// grow returns the rate after one additive step from cur (> 0), with
// maxRate the configured or runtime cap (0 = none); cur when no step may
// go now. Below the rate of the last refusal a step is +10% (at least
// MinRate); near it, one step of MinRate per hold of the crossing
// ceiling, since every overshoot costs a refusal; a whole hold above it
// without a refusal means the receiver raised its limit, and the climb
// turns multiplicative again. With no configured cap the learned cap is
// lifted (0) once the rate is back at top and retry_max has passed since
// the last cut.
func (c *rateCeiling) grow(cur, maxRate rate.Limit, now time.Time, o *Options) rate.Limit {
	if now.Before(c.frozen) {
		return cur
	}
	near := c.refusedAt > 0 && float64(cur) >= 0.9*float64(c.refusedAt)
	if near && cur > c.refusedAt && !c.probeAt.IsZero() && !now.Before(c.probeAt) {
		c.refusedAt = 0
		near = false
	}
	if near {
		if now.Before(c.probeAt) {
			return cur
		}
		c.probeAt = now.Add(max(c.cross.hold, o.ThrottlePause))
	}
	step := cur / 10
	if c.refusedAt > 0 && cur >= c.refusedAt {
		// Above the rate of the last refusal, probe linearly
		// (congestion avoidance): the receiver's limit is near, and a
		// multiplicative climb would overshoot it within one of its
		// windows.
		step = o.MinRate
	}
	next := cur + max(step, o.MinRate)
	switch {
	case maxRate > 0 && next >= maxRate:
		next = maxRate
	case maxRate <= 0 && c.top > 0 && next >= c.top:
		// Lift the learned cap only after a quiet spell: a receiver
		// that refused on rate recently would be hit by the burst of an
		// uncapped destination again.
		if now.Sub(c.lastCut) >= o.RetryMax {
			next = 0
		} else {
			next = c.top
		}
	case maxRate <= 0 && c.top <= 0:
		next = 0
	}
	if c.cross.level > 0 && (next == 0 || float64(next) >= c.cross.level) {
		switch {
		case !c.cross.allows(float64(next), now):
			next = cur
		case next != 0:
			c.cross.crossed(float64(next))
		default:
			c.cross.crossed(c.cross.level)
		}
	}
	if near && next > c.refusedAt {
		// This step crossed the old limit: if no refusal comes within a
		// short confirmation, the receiver has raised it.
		c.probeAt = now.Add(2 * o.ThrottlePause)
	}
	return next
}

// inForce reports whether the ceiling still shapes what comes next in a
// way worth keeping the destination in memory for.
func (c *rateCeiling) inForce(now time.Time, o *Options) bool {
	return now.Before(c.probeAt) || now.Before(c.frozen) || c.cross.holding(now) ||
		(!c.lastCut.IsZero() && now.Sub(c.lastCut) < o.RetryMax) // a learned cap is lifted only after retry_max without a cut
}
