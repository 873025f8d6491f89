package policy

import "time"

// ceiling remembers the level (concurrency or rate) at which a receiver
// last refused, so that additive increase does not walk straight back
// into the same refusal every few seconds: crossing the level again is
// allowed only after a hold that doubles each time the receiver refuses
// again soon after the previous hold ended, up to RetryMax; a quiet
// period of twice the hold starts it over. Real receivers lengthen a block while a sender keeps
// hammering; they also raise their limits later, which the crossing
// attempts discover.
type ceiling struct {
	level float64
	hold  time.Duration
	until time.Time
}

// refused records a refusal at level.
func (c *ceiling) refused(level float64, now time.Time, first, max time.Duration) {
	if c.hold > 0 && now.Sub(c.until) < 2*c.hold {
		c.hold *= 2
	} else {
		c.hold = first
	}
	if c.hold > max {
		c.hold = max
	}
	c.level = level
	c.until = now.Add(c.hold)
}

// allows reports whether growing to next is allowed at now.
func (c *ceiling) allows(next float64, now time.Time) bool {
	return c.level == 0 || next < c.level || !now.Before(c.until)
}

// crossed records a growth to level: at or above the old ceiling the
// level is forgotten (the hold is not: a refusal soon after still counts
// as the same limit).
func (c *ceiling) crossed(level float64) {
	if c.level > 0 && level >= c.level {
		c.level = 0
	}
}

// holding reports whether the ceiling's hold still shapes what comes
// next: crossing is not yet allowed, or a refusal now would double the
// hold.
func (c *ceiling) holding(now time.Time) bool {
	return c.hold > 0 && now.Sub(c.until) < 2*c.hold
}
