package policy

import (
	"time"

	"golang.org/x/time/rate"
)

// The rate law (issue 11 item 3). A receiver that caps the rate refuses
// the message that goes over its limit, and that refusal is the only
// way to learn where the limit is, or that it is still there. So:
//
//   - A refusal teaches the limit at once (see refused): the pace the
//     receiver let through, from the pace delivered just before the
//     first refusal, or from the spacing of two refusals in quick
//     succession; a drop at the learned rate with nothing better to go
//     on is halved. The rate is then the learned one, with a margin.
//   - While the rate is what holds mail back, a probe above the learned
//     rate runs now and then (see grow). A probe that lasts
//     confirmFor without a refusal is a raised limit: it becomes the
//     learned rate and the next probe goes at once, twice as far, so a
//     raised capacity is found in a few seconds. A refusal ends it; the
//     learned rate stands, and the next probe waits, ×1.5 longer each
//     time, from probeGapMin after a drop up to what keeps probing
//     within a refusal per probeDeliveries messages (at most
//     probeGapMax: penalty boxes count refusals per minute).
const (
	probeGain       = 0.5              // a probe's first step: +50 % over the learned rate...
	probeGainMax    = 3.0              // ...doubled per confirmed probe up to ×4 (the step after a drop)...
	probeGainMin    = 0.125            // ...halved per failed one down to +12.5 %, to find a limit between two steps
	probeConfirm    = 2 * time.Second  // a probe this long without a refusal is a raised limit: two windows of receivers that count per second...
	probeMessages   = 10               // ...with at least this many messages
	probeGapMin     = 2 * time.Second  // after a drop the first probe comes this soon: a drop is often brief
	probeGapFirst   = 30 * time.Second // after a refusal teaches the limit, the first probe: the limit was there all along, and a failed probe costs a second's quiet of all mail
	heldFor         = 10 * time.Second // a limit learned this long ago held: a refusal at it is a drop
	probeGapMax     = 60 * time.Second // settled: at most one failed probe a minute
	recoverGapMax   = 4 * time.Second  // recovering from a drop: a failed probe this often at most...
	recoverFor      = time.Minute      // ...for this long after the drop
	probeDeliveries = 100              // settled: at least this many messages per failed probe
	learnMargin     = 0.95             // the rate is this share of the pace the receiver let through
	rateQuiet       = time.Second      // after a rate refusal no message for this long: the receiver's window refills
	spacingHorizon  = 4 * time.Second  // two refusals further apart (after the quiet) say nothing about each other's rate
)

// rateCeiling is the one gate on rate growth: what the destination
// learned of the receiver's rate limit, and when to look above it. With
// nothing learned the rate is the configured one, or unlimited until the
// first rate refusal.
type rateCeiling struct {
	// share is this node's part of its fleet's traffic during one
	// refusal in cluster mode (0 = alone): the spacing of refusals,
	// counted in this node's successes, is scaled to the fleet's.
	share       float64
	limit       rate.Limit    // learned rate; 0 = nothing learned
	probe       rate.Limit    // > limit while a probe runs
	probeFrom   time.Time     // when the running probe began
	confirmedAt time.Time     // when the last probe was confirmed
	probeAt     time.Time     // the next probe may begin then
	gap         time.Duration // the wait after the next failed probe
	gain        float64       // the next probe's step over limit
	recovering  bool          // after a drop: probes go far and often until one finds the new top
	dropAt      time.Time     // when the drop that started the recovery was seen
	limitAt     time.Time     // when limit was last learned (a cut or a confirmed probe)
	before      rate.Limit    // recovering: the learned rate before the drop
	prevLimit   rate.Limit    // the learned rate before the last confirmed probe raised it...
	raisedAt    time.Time     // ...at this time (zero once a refusal at it was seen)
	probeOks    int           // successes counted when the running probe began
	lastCut     time.Time     // the last rate refusal
	frozen      time.Time     // no growth before (a throttle rule's `for`)
	refusedAt   time.Time     // the last rate refusal, for the spacing of the next
	oksAt       int           // successes counted at refusedAt
	// wary: the receiver refused a probe after a pause (it blocks
	// senders that go over its limits, as a penalty box does). Probes
	// above the learned limits then come at most once per probeGapMax
	// and never in the fast recovery after a drop: a box that counts
	// refusals within a minute must never see three.
	wary bool
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

// spacing is the pace the receiver let through between the last rate
// refusal and this one (oks is the count of successes so far, from when
// sending resumed after the last refusal's quiet), when the last one is
// recent and something went between them; else 0. Refusals in quick
// succession mean the receiver's limit held the whole time, and what it
// let through in between is its rate, whatever was sent. The quiet
// (a second at least) leaves the receiver's window empty: what went
// through in less than a second after it is one window's allowance,
// and over a second or more the pace.
func (c *rateCeiling) spacing(oks int, from, now time.Time) rate.Limit {
	if from.Before(c.refusedAt) {
		from = c.refusedAt.Add(rateQuiet)
	}
	n := oks - c.oksAt
	if dt := now.Sub(from); c.refusedAt.IsZero() || dt < 0 || dt > spacingHorizon || n < 1 {
		return 0
	}
	return c.fleetWide(rate.Limit(float64(n) / max(now.Sub(from), time.Second).Seconds()))
}

// fleetWide scales a pace counted from this node's successes to the
// fleet's, in cluster mode (share: this node's part of the fleet's
// traffic, see dest.pace); alone it is the pace itself.
func (c *rateCeiling) fleetWide(r rate.Limit) rate.Limit {
	if c.share > 0 && c.share < 1 {
		return r / rate.Limit(c.share)
	}
	return r
}

// refused records a rate refusal while sending at cur (0 = unlimited),
// with pace the delivered pace just before (paceLong over the last 10 s)
// and oks the successes so far,
// and returns the rate to go on at. ok = false when nothing is known of
// the rate (no cap, nothing delivered) and floor is false: the caller
// cuts concurrency instead, since sessions bound the rate too.
//
//   - A probe that went over: the learned rate stands, and the next
//     probe waits, and goes half as far unless the destination is
//     recovering from a drop.
//   - A refusal soon after the last one (within spacingHorizon): the
//     receiver's limit held the whole time, and what it let through in
//     between is its rate.
//   - The first refusal: the sender went as fast as it could until
//     then, so the pace delivered just before is the receiver's rate.
//   - Otherwise a drop at the learned rate: halved (the pace of the last
//     seconds is from before the drop), and the next refusal's spacing,
//     if one comes, says more. Capacity that drops often comes back:
//     the probes after a drop come soon and go far.
func (c *rateCeiling) refused(cur, pace, paceLong rate.Limit, oks int, resumed time.Time, hard, floor bool, now time.Time, o *Options) (next rate.Limit, ok bool) {
	sp := c.spacing(oks, resumed, now)
	c.refusedAt, c.oksAt = now, oks
	probing, learned := c.probe > 0, c.limit > 0
	defer func() { c.probe = 0 }()
	upTo := func(r rate.Limit) rate.Limit {
		if cur > 0 && cur < r {
			return cur
		}
		return r
	}
	m := rate.Limit(learnMargin)
	drop, refine := false, false
	before := c.limit
	switch {
	case hard:
		c.limit = o.MinRate
	case probing:
		if !c.recovering {
			c.gain = max(c.gain/2, probeGainMin)
		}
		// A failed probe still shows what the receiver let through
		// while it ran (its window's allowance, at least a second's
		// worth): a limit learned too low comes up to it, and a "drop"
		// that was only a learned limit a little too high (the
		// receiver lets through about what it did before) is no drop.
		if n := oks - c.probeOks; n > 0 {
			dt := now.Sub(c.probeFrom)
			sp := c.fleetWide(rate.Limit(float64(n) / max(dt, time.Second).Seconds()))
			// n messages within dt touched at most dt/window + 2 of the
			// receiver's windows: its rate is at least n over those.
			low := c.fleetWide(rate.Limit(float64(n) / float64(int(dt/time.Second)+2)))
			if l := min(m*low, c.probe); l > c.limit {
				c.limit, c.limitAt = l, now
			}
			if c.recovering && sp >= 0.9*c.before {
				c.recovering, c.gain = false, probeGain
			}
		}
		if c.confirmedAt.After(c.lastCut) {
			// A probe confirmed since the last refusal: this is the
			// top of the climb.
			c.recovering = false
		}
		if c.wary {
			c.recovering, c.gain = false, probeGain
		}
		c.lastCut = now
		c.confirmedAt = time.Time{}
		c.probeAt = now.Add(c.probeGap())
		c.gap = min(c.gap*3/2, c.gapMax())
		if c.recovering && now.Sub(c.dropAt) >= recoverFor {
			// No return within recoverFor: the drop is the receiver's
			// new limit, probed as any learned one.
			c.recovering, c.gain = false, probeGain
		}
		if c.recovering {
			// Capacity that dropped often comes back soon: while it has
			// not, a failed probe every few seconds at most finds it
			// within seconds of its return (issue 11: 80 % within 5 s).
			c.gap = min(c.gap, recoverGapMax)
		}
		return max(c.limit, o.MinRate), true
	case learned && cur > 0 && c.prevLimit > 0 && now.Sub(c.raisedAt) < probeGapMax:
		// Refused at a limit a probe raised a little while ago: the
		// probe was only a little above the receiver's limit and got
		// through its confirmation by luck (a rate a few per cent over
		// a window's allowance is refused seldom). It failed late: back
		// to the limit before it, and the next probe waits and goes
		// half as far, as after any failed probe. No drop.
		c.limit = max(c.prevLimit, min(m*sp, cur*0.85))
		c.gain = max(c.gain/2, probeGainMin)
		c.limitAt, c.lastCut, c.confirmedAt, c.raisedAt = now, now, time.Time{}, time.Time{}
		c.probeAt = now.Add(c.probeGap())
		c.gap = min(c.gap*3/2, c.gapMax())
		return max(c.limit, o.MinRate), true
	case sp > 0:
		// Refused again at the learned rate: it is too high by an
		// unknown amount that the spacing may not show (a rate a little
		// over the limit goes through almost whole), so at least 15 %
		// comes off.
		c.limit, refine = m*upTo(sp), true
		// At a limit that held a while, this is a drop of capacity;
		// soon after it was learned, a correction of the estimate,
		// unless the receiver now lets through less than half of the
		// pace it let through over the last 10 s (a first estimate corrected
		// is still about what was delivered; a drop while the
		// corrections went on is not).
		drop = now.Sub(c.limitAt) > heldFor || c.limit < paceLong/2
		if cur > 0 {
			c.limit = min(c.limit, cur*0.85)
		}
	case !learned && pace > 0:
		c.limit = m * upTo(pace)
	case cur > 0:
		c.limit, drop = cur/2, true
	case pace > 0:
		c.limit = pace / 2
	case floor:
		// Nothing else to cut (concurrency is at its floor): the floor
		// of the rate, from which probes climb.
		c.limit = o.MinRate
	default:
		return 0, false
	}
	c.limit = max(c.limit, o.MinRate)
	c.limitAt = now
	c.confirmedAt = time.Time{}
	c.lastCut = now
	switch {
	case c.wary:
		c.gap, c.gain, c.recovering = probeGapMax, probeGain, false
	case drop && !hard:
		if c.recovering {
			// A further drop while recovering (the halving was not
			// enough, or the capacity fell again): the level to return
			// to is still the one before the first drop. The refusals
			// of a drop say the receiver got smaller, not that the rate
			// it took before was wrong.
			c.before = max(before, c.before)
		} else {
			c.dropAt, c.before = now, before
		}
		c.gap, c.gain, c.recovering = probeGapMin, probeGainMax, true
	case refine && c.recovering:
		// The spacing refines what a drop taught: still recovering.
		c.gap, c.gain = probeGapMin, probeGainMax
	default:
		c.gap, c.gain, c.recovering = probeGapFirst, probeGain, false
	}
	c.probeAt = now.Add(c.gap)
	c.gap = min(c.gap*3/2, c.gapMax())
	return c.limit, true
}

// probeGap is the wait after a failed probe: gap, and at least
// probeGapMax from a wary receiver.
func (c *rateCeiling) probeGap() time.Duration {
	if c.wary {
		return max(c.gap, probeGapMax)
	}
	return c.gap
}

// gapMax is the longest wait between failed probes at the learned rate:
// probeDeliveries messages, within [probeGapFirst, probeGapMax].
func (c *rateCeiling) gapMax() time.Duration {
	g := probeGapMax
	if c.limit > 0 {
		g = time.Duration(probeDeliveries / float64(c.limit) * float64(time.Second))
	}
	return min(max(g, probeGapFirst), probeGapMax)
}

// grow returns the rate to send at now, from cur, with maxRate the
// configured or runtime cap (0 = none) and binding whether the rate is
// what holds mail back (a message waited for a token lately): a probe
// runs only then, since a probe that sends no faster teaches nothing.
func (c *rateCeiling) grow(cur, maxRate rate.Limit, binding bool, oks int, now time.Time) rate.Limit {
	if c.limit <= 0 || now.Before(c.frozen) {
		return cur
	}
	if maxRate > 0 && c.limit >= maxRate {
		c.probe = 0
		return maxRate
	}
	if c.probe > 0 {
		if now.Sub(c.probeFrom) < confirmFor(c.probe) {
			return cur
		}
		if binding {
			// A whole confirmation above the limit without a refusal:
			// the receiver raised it. Climb on at once, faster.
			c.prevLimit = c.limit
			c.limit, c.confirmedAt, c.limitAt, c.raisedAt = c.probe, now, now, now
			c.gain = min(2*c.gain, probeGainMax)
			if c.recovering && c.limit >= c.before {
				// Back at the level before the drop: the receiver's
				// capacity came back, and that level held before. The
				// recovery is over; probing above it goes on as above
				// any learned limit (a step of ×4 from here was refused
				// at once and fell back to the recovery's last level).
				c.recovering, c.gain = false, probeGain
				c.probeAt, c.gap = now.Add(probeGapFirst), probeGapFirst
				c.gap = min(c.gap*3/2, c.gapMax())
			}
		}
		c.probe = 0
	}
	if !binding || now.Before(c.probeAt) {
		return c.capped(c.limit, maxRate)
	}
	next := c.limit * rate.Limit(1+c.gain)
	if c.recovering && c.before > c.limit {
		// Recovering from a drop, the probe asks whether the rate
		// before it is back: it was the receiver's, a smaller step
		// would take one more confirmation to get there, and a larger
		// one would only be refused.
		next = c.before
	}
	c.probe = c.capped(next, maxRate)
	c.probeFrom, c.probeOks = now, oks
	return c.probe
}

// confirmFor is how long a probe at r runs before it counts as
// accepted: probeConfirm, and at low rates long enough for probeMessages
// messages, since a receiver that counts per window refuses only once a
// window holds one message too many.
func confirmFor(r rate.Limit) time.Duration {
	return max(probeConfirm, time.Duration(probeMessages/float64(r)*float64(time.Second)))
}

// capped is r within maxRate (0 = no cap).
func (c *rateCeiling) capped(r, maxRate rate.Limit) rate.Limit {
	if maxRate > 0 && (r > maxRate || r <= 0) {
		return maxRate
	}
	return r
}

// inForce reports whether the ceiling is in the middle of something
// worth keeping the destination in memory for.
func (c *rateCeiling) inForce(now time.Time) bool {
	return c.probe > 0 || now.Before(c.probeAt) || now.Before(c.frozen)
}
