package policy

import (
	"time"
)

// block pauses d until until (a throttle or an outage): no new session
// until then, then one probe. Caller holds p.mu.
func (p *Policy) block(d *dest, until, now time.Time) {
	d.pause.block(until)
	d.lastChange = now
	d.version++
}

// decrease is the decrease of the limits scope names after a refusal:
// the rate to what the receiver let through (see rateCeiling.refused),
// no message before quiet; concurrency to the sessions it took, or by
// half when the refusal was unclear (ScopeBoth). A rate cut with nothing
// known about the rate (no cap, no delivered pace) cuts concurrency
// instead, since sessions bound the rate too. Any decrease ends slow
// start.
func (p *Policy) decrease(d *dest, s Scope, hard bool, quiet, now time.Time) {
	d.slow.end()
	cutConc := s == ScopeConnections || s == ScopeBoth
	if s == ScopeRate || s == ScopeBoth {
		pace, long, share := d.pace(now)
		if !d.rate.cut(hard, d.conc.level <= p.o.MinConcurrency, pace, long, share, quiet, now, &p.o) {
			cutConc = true
		}
	}
	if cutConc {
		// Cut from the sessions in flight when fewer than the limit; a
		// probe is one session by design: cut from the limit then.
		base := d.conc.level
		active := d.sessions()
		if !d.pause.started && active > 0 && active < base {
			base = active
		}
		exact := s == ScopeConnections && !d.pause.started && active > 0
		if exact {
			base = active
		}
		d.conc.cut(base, exact, hard, d.rate.ceil.wary, now, &p.o)
	}
	d.successes = 0
	d.conc.limited = false
	d.lastChange = now
	d.version++
	p.log.Info("policy: decrease", "dest", d.name, "scope", string(s), "concurrency", d.conc.level, "rate", float64(d.rate.rate))
}

// increase follows one success: the rate as its ceiling says (a probe
// above the learned rate begins or is confirmed), and once per
// IncreaseAfter consecutive successes +1 concurrency (see concAIMD.grow),
// never above the configured or runtime maximum.
func (p *Policy) increase(d *dest, now time.Time) bool {
	changed := d.rate.grow(d.maxRate(), now)
	if changed {
		p.log.Debug("policy: rate", "dest", d.name, "rate", float64(d.rate.rate), "learned", float64(d.rate.ceil.limit), "probe", float64(d.rate.ceil.probe))
	}
	if !d.slow.on && d.successes >= p.o.IncreaseAfter {
		d.successes = 0
		if d.conc.grow(d.maxConc(), now) {
			changed = true
		}
	}
	if changed {
		d.lastChange = now
		d.version++
	}
	return changed
}

// afterPause spreads the recipients waiting on a pause over a tenth of
// its length (at least the probe wait) so that they do not all come due
// at the same instant.
func (p *Policy) afterPause(d *dest, now time.Time) time.Time {
	until := d.blockedUntil()
	span := until.Sub(now) / 10
	if w := p.probeWait(); span < w {
		span = w
	}
	return until.Add(time.Duration(p.rnd() * float64(span)))
}
