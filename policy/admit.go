package policy

import "time"

// probeWait is how long a caller is told to wait while a probe session is
// in flight: short, because the probe's outcome reopens the destination.
func (p *Policy) probeWait() time.Duration {
	if p.o.RetryBase < time.Second {
		return p.o.RetryBase
	}
	return time.Second
}

// Admit gates every session (called by the scheduler before it dials).
//
//	ok=true: a slot is granted; the caller MUST call Release(dest) when the session ends.
//	ok=false, retryAt set: paused (or a probe is in flight) until retryAt; do not dial.
//	ok=false, retryAt zero: every slot is busy; ask again after a Release.
//
// After a pause ends exactly one session (the probe) is admitted until an
// Observe reports its success (open) or failure (next backoff step).
func (p *Policy) Admit(name string) (ok bool, retryAt time.Time) {
	now := p.o.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.get(name)
	switch d.stateAt(now) {
	case StatePaused, StateSuspended:
		return false, d.blockedUntil()
	case StateProbing:
		if d.active >= d.conc.level {
			d.conc.limited = true
			return false, time.Time{}
		}
		if !d.pause.started {
			d.lastChange = now
		}
		if !d.pause.admitProbe(d.active) {
			return false, now.Add(p.probeWait())
		}
		d.perConn.admits++
		d.active++
		d.lastAttempt = now
		return true, time.Time{}
	}
	if d.active >= d.conc.level {
		d.conc.limited = true
		return false, time.Time{}
	}
	d.active++
	if d.active == d.conc.level {
		d.conc.limited = true
	}
	d.perConn.admits++
	d.lastAttempt = now
	return true, time.Time{}
}

// Release ends a session granted by Admit. A probe released without any
// Observe frees the probe slot so that another probe may go.
func (p *Policy) Release(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.get(name)
	if d.active > 0 {
		d.active--
	}
	d.conc.ended()
	d.pause.release()
}

// Reserve asks for one rate token. 0 = send now (token taken). >0 = not
// taken (the reservation is cancelled); wait that long or reschedule.
// An unlimited rate always answers 0.
func (p *Policy) Reserve(name string) time.Duration {
	now := p.o.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.get(name).rate.reserve(now, p.probeWait())
}

// MessagesPerConnection is the number of messages to send per session;
// 0 = unlimited. Lowered by the reconnect class.
func (p *Policy) MessagesPerConnection(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.get(name).perConn.limit
}
