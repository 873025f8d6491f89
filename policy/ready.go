package policy

import "time"

// Ready is the scheduler's one question about a destination (issue 10):
// how many more sessions may open at name now, and, when none may, when
// to ask again. at is zero when only a Release or an Observe at name can
// change the answer (every slot is busy); otherwise it is the end of a
// pause or suspension, the end of a probe's wait, or the next rate token.
// It takes nothing: each session is still taken with Admit, and a
// destination the scheduler does not ask again costs nothing. The
// scheduler asks only when it has work due at name.
//
// The answer counts rate tokens as well as slots: a destination whose
// token bucket is empty opens no new session until the next token, since
// the session would only wait for it.
func (p *Policy) Ready(name string) (sessions int, at time.Time) {
	now := p.o.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.get(name)
	switch d.stateAt(now) {
	case StatePaused, StateSuspended:
		return 0, d.blockedUntil()
	case StateProbing:
		if d.pause.probing {
			return 0, now.Add(p.probeWait())
		}
		if d.active >= d.conc.level {
			// The sessions still open are the probe: their next
			// success reopens the destination.
			return 0, time.Time{}
		}
		sessions = 1
	default:
		sessions = d.conc.level - d.active
		if sessions <= 0 {
			// The scheduler asks only with work due: the limit holds
			// a session back, which is what lets it grow (Admit marks
			// the same). Without this, sessions that never end (one
			// that delivers flat out) never let the limit climb
			// after a cut, since no Admit is ever refused.
			d.conc.limited = true
			return 0, time.Time{}
		}
	}
	if n, next, limited := d.rate.tokens(now); limited {
		if n < 1 {
			return 0, next
		}
		sessions = min(sessions, n)
	}
	return sessions, time.Time{}
}

// Continue reports whether a session already open at name may take its
// next message: not during a suspension (the receiver asked for a stop by
// name), and not while more sessions are open than the current
// concurrency allows (after a multiplicative decrease the extra sessions
// drain away). A throttle pause does not stop an open session: a pause
// stops new connections, not the ones that work.
func (p *Policy) Continue(name string) bool {
	now := p.o.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.get(name)
	if d.stateAt(now) == StateSuspended {
		return false
	}
	return d.conc.allows(d.active)
}

// Paused reports whether name is paused or suspended now: no new
// connection may open, not even by a session that already holds a slot.
func (p *Policy) Paused(name string) bool {
	now := p.o.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.get(name).blocked(now)
}
