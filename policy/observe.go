package policy

import (
	"fmt"
	"golang.org/x/time/rate"
	"strings"
	"time"

	"sluice/reply"
)

// Outcome is one reply for one recipient at a destination.
type Outcome struct {
	Reply    reply.Reply
	Rcpt     string    // "" for a session-level observation with no recipient
	Attempts int       // attempts for this recipient including this one (>=1)
	Queued   time.Time // when the recipient was queued
	// Fleet, in cluster mode, is what the whole fleet does at the
	// destination (package cluster fills it for a refusal of the
	// destination): a cut then starts from the fleet's sessions and
	// pace, not from this node's share of them (nil: this node alone).
	Fleet *Fleet
}

// Fleet is a destination as a cluster of nodes sees it (issue 15).
type Fleet struct {
	Sessions int        // sessions open at the destination, every node
	Pace     rate.Limit // messages/s over the last second (0 = unknown)
	LongPace rate.Limit // messages/s over the last 10 s (0 = unknown)
}

// Action is what to do with the recipient.
type Action int

const (
	ActionDone   Action = iota // delivered
	ActionRetry                // try again at Decision.RetryAt
	ActionBounce               // permanent failure: DSN
)

func (a Action) String() string {
	switch a {
	case ActionDone:
		return "done"
	case ActionRetry:
		return "retry"
	case ActionBounce:
		return "bounce"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Decision is what Observe asks of the caller.
type Decision struct {
	Verdict    Verdict
	Action     Action
	RetryAt    time.Time // ActionRetry: when this recipient is due again (jittered)
	EndSession bool      // close this connection now
	Suppress   bool      // add Rcpt to the suppression list (5.1.1)
	Alarm      string    // non-empty when this observation raised a sender-side alarm
}

// Observe records one reply at dest for one recipient and returns what to
// do with the recipient and the connection. Session-level failures are
// reported once per recipient of the batch; they still count as one
// signal: a destination already paused is neither cut nor paused again,
// and cuts are at most one per DecreaseWindow.
func (p *Policy) Observe(name string, o Outcome) Decision {
	v := p.Classify(o.Reply)
	now := p.o.Now()
	attempts := o.Attempts
	if attempts < 1 {
		attempts = 1
	}
	p.mu.Lock()
	d := p.get(name)
	d.fleet = o.Fleet // until the unlock below
	d.count(v.Class, now)
	d.lastReply = o.Reply.String()
	d.lastAttempt = now
	dec := Decision{Verdict: v, Action: ActionRetry}
	// RFC 5321 §3.8: with 421 the server closes the channel.
	dec.EndSession = o.Reply.Code == 421 || (o.Reply.Err != nil && o.Reply.Code == 0)
	switch v.Class {
	case ClassThrottle, ClassSuspend, ClassUnavailable, ClassTLSPolicy:
	default:
		// Any answer but a refusal of the destination shows it is up: a
		// probe that gets one reopens the destination.
		if !d.blocked(now) && d.pause.reopen() {
			d.lastChange = now
			d.version++
		}
	}
	switch v.Class {
	case ClassGreylist, ClassRecipientTemp, ClassPermanent:
		switch o.Reply.Stage {
		case reply.StageRcpt, reply.StageData, reply.StageDataEnd:
			// The receiver took the transaction past MAIL: it counts
			// against its rate as a delivery does.
			d.rate.oks.add(now)
		}
	}
	switch v.Class {
	case ClassSuccess:
		dec.Action = ActionDone
		d.pause.step = 0
		d.perConn.oks++
		d.rate.oks.add(now)
		d.successes++
		if d.slow.on {
			if c := d.slow.grow(d.conc.level, d.maxConc()); c != d.conc.level {
				d.conc.level = c
				d.lastChange = now
			}
		}
		p.increase(d, now)
		if o.Rcpt != "" {
			p.greyAccepted(d, o.Rcpt, now)
			delete(p.expiries, strings.ToLower(o.Rcpt))
			delete(p.mailboxes, greyKey(name, o.Rcpt))
		}
	case ClassThrottle:
		// The destination is paused now: sending more on this session
		// would be the hammering the pause exists to stop.
		dec.EndSession = true
		p.onThrottle(d, v, now)
		dec.RetryAt = p.afterPause(d, now)
		dec.Alarm = p.checkAlarm(now)
	case ClassSuspend:
		dec.EndSession = true
		p.onSuspend(d, v, now)
		dec.RetryAt = p.afterPause(d, now)
		if v.Alarm {
			dec.Alarm = fmt.Sprintf("destination %s blocks this sender: %s", name, o.Reply.String())
		}
		if a := p.checkAlarm(now); a != "" {
			dec.Alarm = a
		}
	case ClassUnavailable:
		dec.EndSession = true
		p.onUnavailable(d, v, now)
		dec.RetryAt = p.afterPause(d, now)
	case ClassTLSPolicy:
		// Every recipient at this destination would meet the same
		// policy failure: pause it with the unavailable backoff (no
		// throttle, no cut) and say so, once per attempt, in the log.
		dec.EndSession = true
		p.onUnavailable(d, v, now)
		dec.RetryAt = p.afterPause(d, now)
		p.log.Warn("policy: TLS policy failure: destination paused", "dest", name, "retry_at", dec.RetryAt, "reply", o.Reply.String())
	case ClassReconnect:
		dec.EndSession = true
		if v.Rule != "builtin:http-421" {
			p.onReconnect(d, now)
		}
		dec.RetryAt = now.Add(time.Duration(p.rnd() * float64(p.probeWait())))
	case ClassProtocol:
		// The reply stream no longer matches our commands: drop the
		// connection (no QUIT) and retry this recipient with its own
		// backoff. No pause, no cut, no per-connection limit: a broken
		// server says nothing about the rate it accepts.
		dec.EndSession = true
		dec.RetryAt = now.Add(RetryDelay(attempts, p.o.RetryBase, p.o.RetryMax, p.rnd()))
	case ClassGreylist:
		dec.RetryAt = p.greyRefused(d, o.Rcpt, v, now)
	case ClassRecipientTemp:
		if v.Delay > 0 {
			// The mailbox says when it will take mail again ("receives
			// too many messages, try again in 10 minutes"): come back
			// just after that (the hint is capped by max_hint), not at
			// the recipient's own backoff, which may be far longer or
			// shorter.
			dec.RetryAt = p.afterHint(v.Delay, now)
		} else {
			dec.RetryAt = now.Add(RetryDelay(attempts, p.o.RetryBase, p.o.RetryMax, p.rnd()))
		}
		p.holdMailbox(name, o.Rcpt, dec.RetryAt, now)
	case ClassAuthFix:
		dec.RetryAt = now.Add(RetryDelay(attempts, p.o.RetryBase, p.o.RetryMax, p.rnd()))
		dec.Alarm = fmt.Sprintf("auth-fix at %s: fix %s (%s)", name, v.Fix, o.Reply.String())
	case ClassPermanent:
		dec.Action = ActionBounce
		dec.Suppress = o.Rcpt != "" && (o.Reply.Enhanced == "5.1.1")
	}
	d.fleet = nil
	save := p.snapshotForSave(d)
	p.mu.Unlock()
	if dec.Alarm != "" {
		p.log.Warn("policy: sender-side alarm", "dest", name, "alarm", dec.Alarm, "reply", o.Reply.String())
	}
	p.save(save)
	return dec
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// afterHint is when a recipient told to come back after delay is due:
// just after it, by greylist_margin and up to one margin of jitter.
func (p *Policy) afterHint(delay time.Duration, now time.Time) time.Time {
	m := p.o.GreylistMargin
	return now.Add(delay + m + time.Duration(p.rnd()*float64(m)))
}

func (p *Policy) onThrottle(d *dest, v Verdict, now time.Time) {
	p.log.Debug("policy: throttle", "dest", d.name, "scope", string(v.Scope), "active", d.active, "concurrency", d.conc.level,
		"rate", float64(d.rate.rate), "learned", float64(d.rate.ceil.limit), "probe", float64(d.rate.ceil.probe), "paused", d.blocked(now))
	d.lastThrottl = now
	d.successes = 0
	// One decrease per window and per kind: the refusals of one burst
	// are one signal, but a rate refusal after a connection cut (or the
	// reverse) is news about the other limit.
	conn := (v.Scope == ScopeConnections || v.Scope == ScopeBoth) && d.conc.due(now, p.o.DecreaseWindow)
	// A rate refusal of a message sent after the last cut's quiet ended
	// is news too, however soon: the rate it was sent at is the cut one,
	// and it is still too high (a receiver that went on refusing every
	// two seconds at 8.8/s for its 8/s until its penalty box shut).
	rt := (v.Scope == ScopeRate || v.Scope == ScopeBoth) && (d.rate.ceil.due(now, p.o.DecreaseWindow) || d.rate.afterQuiet(now))
	scope := ScopeNone
	switch {
	case conn && rt:
		scope = ScopeBoth
	case conn:
		scope = ScopeConnections
	case rt:
		scope = ScopeRate
	}
	if d.pause.halfOpen && !d.blocked(now) && !v.Hard {
		// A refusal while half-open: nothing has been accepted since a
		// pause in which nothing was sent (the sessions still open kept
		// quiet through it), so the receiver's rate window was empty and
		// this is no overshoot of a rate: the receiver still blocks us (a
		// penalty box, a block longer than the pause). It lengthens the
		// pause by the next backoff step and cuts no rate: each such cut
		// would teach a limit the receiver never had (a box probed six
		// times halved a learned 64/s down to 1/s). Sessions are still
		// news when the probe was not alone. And the receiver is one that
		// punishes: from now on it is probed above its learned limits
		// only rarely (see rateCeiling.wary).
		rt = false
		conn = conn && d.sessions() > 1
		if !d.rate.ceil.wary {
			d.rate.ceil.wary = true
			d.version++
		}
		switch {
		case conn:
			scope = ScopeConnections
		default:
			scope = ScopeNone
		}
	}
	if v.Scope == ScopeConnections && !v.Hard && !conn {
		// A session that was already opening when the receiver refused
		// the first one shows the limit of sessions more exactly.
		d.conc.refusedAgain(d.sessions(), &p.o)
	}
	if d.blocked(now) {
		// Already paused: the pause is not lengthened, and only a kind
		// of limit not cut within the window is cut.
		if scope != ScopeNone {
			p.decrease(d, scope, v.Hard, laterOf(d.blockedUntil(), now.Add(rateQuiet)), now)
		}
		return
	}
	d.pause.step++
	pause := RetryDelay(d.pause.step, p.o.ThrottlePause, p.o.RetryMax, p.rnd())
	if v.Delay > pause {
		pause = min(v.Delay, p.o.RetryMax)
	}
	if scope != ScopeNone {
		// No message on the sessions still open before the pause ends,
		// nor within a second (the window most receivers count in):
		// the receiver's window is full, and each would be refused.
		p.decrease(d, scope, v.Hard, now.Add(max(pause, rateQuiet)), now)
	}
	if v.For > 0 {
		// A throttle rule's `for` holds the reduced limits that long
		// (Microsoft 4.7.650: about 90 minutes at one connection).
		d.conc.freeze(now.Add(v.For))
		d.rate.ceil.freeze(now.Add(v.For))
	}
	p.block(d, now.Add(pause), now)
}

// onSuspend pauses exactly For (RetryMax when the rule names none), then
// the destination resumes through a probe at reduced limits.
func (p *Policy) onSuspend(d *dest, v Verdict, now time.Time) {
	d.lastThrottl = now
	d.successes = 0
	f := v.For
	if f <= 0 {
		f = p.o.RetryMax
	}
	until := now.Add(f)
	if d.blocked(now) && !until.After(d.blockedUntil()) {
		return
	}
	if !d.susp.in(now) {
		scope := v.Scope
		if scope == ScopeNone {
			scope = ScopeBoth
		}
		p.decrease(d, scope, v.Hard, until, now)
	}
	d.susp.until = until
	d.pause.close()
	d.lastChange = now
	d.version++
}

// onUnavailable pauses with exponential backoff (RetryBase × 2^k,
// jitter, cap RetryMax); the probe after it decides.
func (p *Policy) onUnavailable(d *dest, v Verdict, now time.Time) {
	d.successes = 0
	if d.blocked(now) {
		return
	}
	d.pause.step++
	pause := RetryDelay(d.pause.step, p.o.RetryBase, p.o.RetryMax, p.rnd())
	if v.Delay > pause {
		pause = min(v.Delay, p.o.RetryMax)
	}
	p.block(d, now.Add(pause), now)
}

// onReconnect lowers messages per connection (see perConnection.lower).
func (p *Policy) onReconnect(d *dest, now time.Time) {
	if d.perConn.lower() {
		d.lastChange = now
		d.version++
	}
}

// ObserveExpiry counts a soft-bounce expiry for rcpt and reports whether
// it should now be suppressed (SuppressAfterExpiries in a row; a success
// resets the count; 0 = never).
func (p *Policy) ObserveExpiry(rcpt string) (suppress bool) {
	if p.o.SuppressAfterExpiries == 0 {
		return false
	}
	k := strings.ToLower(rcpt)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.expiries[k]; !ok && len(p.expiries) >= maxTracked {
		for old := range p.expiries {
			delete(p.expiries, old)
			break
		}
	}
	p.expiries[k]++
	return p.expiries[k] >= p.o.SuppressAfterExpiries
}
