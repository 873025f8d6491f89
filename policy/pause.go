package policy

import "time"

// pauseProbe is the pause and the half-open probe after it, as a circuit
// breaker: during a pause nothing opens; when it ends the destination is
// half-open, and exactly one session (the probe) is admitted until a
// reply that is not a refusal of the destination reopens it, or a refusal
// starts the next pause, one backoff step longer.
type pauseProbe struct {
	until    time.Time // end of the pause (in force while now < until)
	step     int       // backoff step; reset by a success
	halfOpen bool      // a pause or suspension began and no reply has reopened the destination since
	started  bool      // half-open and a probe was admitted: Release matches sessions in order
	probing  bool      // a probe session is in flight
	older    int       // sessions from before the probe still open
}

// in reports whether the pause is in force at now.
func (p *pauseProbe) in(now time.Time) bool { return now.Before(p.until) }

// block begins a pause until until: half-open when it ends.
func (p *pauseProbe) block(until time.Time) {
	p.until = until
	p.close()
}

// close makes the destination half-open once whatever blocks it ends (a
// pause, or a suspension, which keeps its own end): no probe in flight.
func (p *pauseProbe) close() {
	p.halfOpen, p.started, p.probing = true, false, false
}

// reopen ends the half-open state: a reply that is not a refusal of the
// destination came. It reports whether anything changed.
func (p *pauseProbe) reopen() bool {
	if !p.halfOpen {
		return false
	}
	p.halfOpen, p.started, p.probing = false, false, false
	p.step = 0
	return true
}

// admitProbe admits the probe when none is in flight; active is the
// number of sessions open before it.
func (p *pauseProbe) admitProbe(active int) bool {
	p.started = true
	if p.probing {
		return false
	}
	p.probing = true
	p.older = active
	return true
}

// release ends a session while half-open. Without session ids, releases
// are matched in order: sessions opened before the probe end first as far
// as we can tell, so a late one does not free a second probe.
func (p *pauseProbe) release() {
	if !p.started {
		return
	}
	if p.older > 0 {
		p.older--
	} else {
		p.probing = false
	}
}

// suspension is a stop the receiver asked for by name, for a given time
// (a rule's `for`, Yahoo's TSS04): unlike a pause it stops open sessions
// too, and it is exact, with no backoff. A half-open probe follows it as
// after a pause.
type suspension struct {
	until time.Time
}

// in reports whether the suspension is in force at now.
func (s *suspension) in(now time.Time) bool { return now.Before(s.until) }
