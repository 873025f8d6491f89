package policy

import (
	"time"
)

// pause stops admissions to d until until. Caller holds p.mu.
func (d *dest) pause(state string, until, now time.Time) {
	d.state = state
	d.pausedUntil = until
	d.probing = false
	d.lastChange = now
	d.version++
}

// pausedAt reports whether d is inside a pause at now: refusals from
// sessions that were already running when the pause began are the same
// signal and must not step the backoff or cut again.
func (d *dest) pausedAt(now time.Time) bool {
	return (d.state == StatePaused || d.state == StateSuspended) && now.Before(d.pausedUntil)
}

// decrease is the multiplicative decrease of AIMD. Connections are cut
// from the number of sessions actually in flight when that is lower than
// the limit (like TCP cutting from the flight size, not the window). With
// no rate cap, the first rate cut starts from the delivery rate observed
// just before; with no estimate either, the rate is left alone and only
// concurrency is cut, since sessions bound the rate too.
func (p *Policy) decrease(d *dest, s Scope, hard bool, now time.Time) {
	d.slow = false
	cutConc := s == ScopeConnections || s == ScopeBoth
	cutRate := s == ScopeRate || s == ScopeBoth
	if cutRate {
		// Cut from what was actually delivered when that is below the
		// cap (as TCP cuts from the flight size): a cap that grew above
		// the receiver's limit says nothing about the limit.
		base := d.rate
		obs := d.observedRate(now)
		if base <= 0 {
			base = obs
			d.rateTop = 2 * base
		} else if obs > 0 && obs < base {
			base = obs
		}
		if base > 0 {
			d.rateRefused = base
		}
		if base > 0 {
			d.rceil.refused(float64(base), now, 2*p.o.ThrottlePause, p.o.RetryMax)
			nr := base / 2
			if hard {
				nr = p.o.MinRate
			}
			if nr < p.o.MinRate {
				nr = p.o.MinRate
			}
			d.setRate(nr, now)
			d.lastRateCut = now
		} else {
			cutConc = true
		}
	}
	if cutConc {
		// A probe is one session by design: cut from the limit then.
		base := d.conc
		if d.state != StateProbing && d.active > 0 && d.active < base {
			base = d.active
		}
		d.ceil.refused(float64(base), now, 2*p.o.ThrottlePause, p.o.RetryMax)
		nc := base / 2
		if hard {
			nc = p.o.MinConcurrency
		}
		if nc < p.o.MinConcurrency {
			nc = p.o.MinConcurrency
		}
		d.conc = nc
		d.lastConnCut = now
	}
	d.lastDecrease = now
	d.successes = 0
	d.limited = false
	d.lastChange = now
	d.version++
	p.log.Info("policy: decrease", "dest", d.name, "scope", string(s), "concurrency", d.conc, "rate", float64(d.rate))
}

// increase is the additive increase: +1 concurrency (only when the
// limit held sessions back since the last step) and one rate step of +10% (at least
// MinRate) per IncreaseAfter consecutive successes. At or above the level
// of the last connection cut, growth is cautious: IncreaseAfter × the
// current concurrency successes per step, as in TCP congestion
// avoidance. Never above the configured or runtime maximum; with no
// configured rate the cap is lifted once the rate is back to twice the
// rate observed at the first cut.
func (p *Policy) increase(d *dest, now time.Time) bool {
	if d.successes < p.o.IncreaseAfter || now.Before(d.holdUntil) {
		return false
	}
	d.successes = 0
	changed := false
	if mc := d.maxConc(); d.conc < mc && d.limited && d.ceil.allows(float64(d.conc+1), now) {
		d.conc++
		d.limited = false
		d.ceil.crossed(float64(d.conc))
		changed = true
	} else if d.conc > mc {
		d.conc = mc
		changed = true
	}
	// Near the rate of the last refusal, one step per ceiling hold: the
	// receiver's limit is there, and every overshoot costs a refusal.
	nearLimit := d.rateRefused > 0 && float64(d.rate) >= 0.9*float64(d.rateRefused)
	if nearLimit && d.rate > d.rateRefused && !d.rateProbeAt.IsZero() && !now.Before(d.rateProbeAt) {
		// A whole hold above the old limit without a refusal: the
		// receiver raised its limit. Climb multiplicatively again.
		d.rateRefused = 0
		nearLimit = false
	}
	if d.rate > 0 && (!nearLimit || !now.Before(d.rateProbeAt)) {
		if nearLimit {
			d.rateProbeAt = now.Add(max(d.rceil.hold, p.o.ThrottlePause))
		}
		step := d.rate / 10
		// Above the rate of the last refusal, probe linearly (congestion
		// avoidance): the receiver's limit is near, and a multiplicative
		// climb would overshoot it within one of its windows.
		if d.rateRefused > 0 && d.rate >= d.rateRefused {
			step = p.o.MinRate
		}
		if step < p.o.MinRate {
			step = p.o.MinRate
		}
		nr := d.rate + step
		mr := d.maxRate()
		switch {
		case mr > 0 && nr >= mr:
			nr = mr
		case mr <= 0 && d.rateTop > 0 && nr >= d.rateTop:
			// Lift the learned cap only after a quiet spell: a receiver
			// that refused on rate recently would be hit by the burst of
			// an uncapped destination again.
			if now.Sub(d.lastRateCut) >= p.o.RetryMax {
				nr = 0
			} else {
				nr = d.rateTop
			}
		case mr <= 0 && d.rateTop <= 0:
			nr = 0
		}
		if d.rceil.level > 0 && (nr == 0 || float64(nr) >= d.rceil.level) {
			if !d.rceil.allows(float64(nr), now) {
				nr = d.rate
			} else if nr != 0 {
				d.rceil.crossed(float64(nr))
			} else {
				d.rceil.crossed(d.rceil.level)
			}
		}
		if nr != d.rate {
			d.setRate(nr, now)
			changed = true
		}
		if nearLimit && nr > d.rateRefused {
			// This step crossed the old limit: if no refusal comes
			// within a short confirmation, the receiver has raised it
			// and the climb turns multiplicative again.
			d.rateProbeAt = now.Add(2 * p.o.ThrottlePause)
		}
	}
	if changed {
		d.lastChange = now
		d.version++
	}
	return changed
}

// pauseJitter spreads the recipients waiting on a pause over a tenth of
// its length (at least the probe wait) so that they do not all come due
// at the same instant.
func (p *Policy) afterPause(d *dest, now time.Time) time.Time {
	span := d.pausedUntil.Sub(now) / 10
	if w := p.probeWait(); span < w {
		span = w
	}
	return d.pausedUntil.Add(time.Duration(p.rnd() * float64(span)))
}
