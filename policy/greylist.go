package policy

import (
	"strings"
	"time"
)

// greyRefusal tracks one greylisted recipient at one destination.
type greyRefusal struct {
	first, last time.Time
	n           int  // refusals so far
	held        bool // waiting for the destination's canary (see Hold)
}

func greyKey(dest, rcpt string) string { return dest + "\x00" + strings.ToLower(rcpt) }

// greySearchRatio is the canary's step: each retry comes this many times
// as long after its first refusal as the last. The acceptance then lands
// within this factor of the window, and so does every recipient that
// waits for it (issue 11: within 1.5 G of its first attempt).
const greySearchRatio = 1.4

// greyCanary is the one recipient of a destination that searches for an
// unknown greylisting window (issue 11 item 3): it retries at
// first+greylist_default, then ×greySearchRatio per refusal, while every
// other greylisted recipient is held back (Hold) until the window is
// known and then retries once, at its own first refusal plus the window.
// A destination pays the search once, with one recipient.
type greyCanary struct {
	key   string        // greyKey of the canary; "" = none
	first time.Time     // its first refusal
	next  time.Duration // its next retry, after first
}

// due is the canary's next retry.
func (c greyCanary) due() time.Time { return c.first.Add(c.next) }

// canaryGrace is how late a canary's retry may be before the canary is
// given up (its message was bounced or deleted, the destination paused):
// a held recipient then goes, and becomes the canary.
const canaryGrace = 30 * time.Second

// canaryRecheck is how often a held recipient looks again while the
// canary's answer is late: each look costs a queue write.
const canaryRecheck = 5 * time.Second

// live reports whether the canary still searches at now; blockedUntil
// is the end of the destination's last pause or suspension, which holds
// the canary back like any recipient.
func (c greyCanary) live(now, blockedUntil time.Time) bool {
	due := c.due()
	if blockedUntil.After(due) {
		due = blockedUntil
	}
	return c.key != "" && now.Before(due.Add(canaryGrace))
}

// greyRefused records a greylist refusal and returns when the recipient
// is due again: the hinted delay (plus greylist_margin); else the
// learned window counted from the first refusal; else, while the window
// is unknown, the canary's next step for the canary, and for the others
// the same step counted from their own first refusal (Hold keeps them
// back until the canary's answer). Up to one greylist_margin of jitter
// spreads a burst. It teaches the destination's greyBracket.
func (p *Policy) greyRefused(d *dest, rcpt string, v Verdict, now time.Time) time.Time {
	k := greyKey(d.name, rcpt)
	g, seen := p.grey[k]
	if !seen {
		if len(p.grey) >= maxTracked {
			p.evictGrey(now)
		}
		g.first = now
	} else if d.grey.refusedAfter(now.Sub(g.first)) {
		d.version++
	}
	g.last = now
	g.n++
	g.held = false
	var due time.Time
	margin := time.Duration(0)
	switch {
	case v.Delay > 0:
		due, margin = now.Add(v.Delay), p.o.GreylistMargin
	case d.grey.hi > 0:
		// hi is a proven acceptance point: no margin on top, or every
		// round would be later than the last.
		due = g.first.Add(d.grey.hi)
	case d.canary.key == k || !d.canary.live(now, d.blockedUntil()) || rcpt == "":
		// The canary's next step: past the longest refusal seen here
		// and past its own last try, by greySearchRatio.
		// A step is never more than retry_max after this try.
		since := now.Sub(g.first)
		step := max(p.o.GreylistDefault, scaleDur(d.grey.lo, greySearchRatio), scaleDur(since, greySearchRatio))
		step = min(step, since+p.o.RetryMax)
		if rcpt != "" {
			d.canary = greyCanary{key: k, first: g.first, next: step}
		}
		due = g.first.Add(step)
	default:
		g.held = true
		due = g.first.Add(d.canary.next)
	}
	if rcpt != "" {
		p.grey[k] = g
	}
	if due.Before(now) {
		due = now
	}
	if d.canary.key == k {
		// The canary's tries are the search itself: jitter would only
		// loosen the bracket (one recipient is no burst to spread).
		return due
	}
	return due.Add(margin + time.Duration(p.rnd()*float64(p.o.GreylistMargin)))
}

func scaleDur(d time.Duration, f float64) time.Duration { return time.Duration(float64(d) * f) }

// Hold reports whether rcpt, due now at dest, should wait instead of
// being tried: its mailbox said it takes nothing before a time (see
// holdMailbox); or it is greylisted there, the destination's window is
// not known yet and its canary is still searching, so a try now would
// only be greylisted again. until is when to look again: the recipient's own
// first refusal plus the canary's next step, or plus the window once it
// is known. Zero: go. The scheduler asks before each attempt; the answer
// costs a map lookup for a recipient that was never greylisted.
func (p *Policy) Hold(name, rcpt string) (until time.Time) {
	now := p.o.Now()
	k := greyKey(name, rcpt)
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.mailboxHeld(k, now); !t.IsZero() {
		return t
	}
	g, ok := p.grey[k]
	if !ok || !g.held {
		return time.Time{}
	}
	d, ok := p.dests.Get(name)
	switch {
	case !ok:
	case d.grey.hi > 0:
		if t := g.first.Add(d.grey.hi); t.After(now) {
			return t.Add(time.Duration(p.rnd() * float64(p.o.GreylistMargin)))
		}
	case d.canary.live(now, d.blockedUntil()) && d.canary.key != k:
		// The canary's answer for its next step comes at its due time
		// (or after a pause); this recipient's turn at that step is as
		// far after its own first refusal, and never before the answer.
		answer := laterOf(d.canary.due(), d.blockedUntil())
		t := laterOf(g.first.Add(d.canary.next), answer.Add(p.probeWait()))
		if t.After(now) {
			return t
		}
		// The answer is late (the canary waits for a session, a token):
		// look again shortly, until the canary is given up.
		return now.Add(min(canaryRecheck, answer.Add(canaryGrace).Sub(now)))
	}
	g.held = false
	p.grey[k] = g
	return time.Time{}
}

// greyAccepted learns the upper bound of the window from an acceptance.
func (p *Policy) greyAccepted(d *dest, rcpt string, now time.Time) {
	k := greyKey(d.name, rcpt)
	g, ok := p.grey[k]
	if !ok {
		return
	}
	delete(p.grey, k)
	if d.canary.key == k {
		d.canary = greyCanary{}
	}
	if d.grey.acceptedAfter(now.Sub(g.first)) {
		d.lastChange = now
		d.version++
	}
}

// evictGrey keeps the refusal map bounded: entries older than a day go
// first; if none, an arbitrary one.
func (p *Policy) evictGrey(now time.Time) {
	n := 0
	for k, g := range p.grey {
		if now.Sub(g.last) > 24*time.Hour {
			delete(p.grey, k)
			n++
		}
	}
	if n == 0 {
		for k := range p.grey {
			delete(p.grey, k)
			break
		}
	}
}

// greyBracket is what a destination learned of its greylisting window:
// it is longer than lo (the longest interval after a first refusal that
// was refused again) and at most hi (the shortest that was accepted; 0 =
// unknown). hi only ever shrinks, so retrying at first+hi and being
// accepted a margin later does not make it creep upward; a refusal at or
// beyond hi proves the receiver lengthened its window and drops hi.
type greyBracket struct {
	lo, hi time.Duration
}

// refusedAfter learns from a refusal since after the recipient's first
// one; it reports a change.
func (g *greyBracket) refusedAfter(since time.Duration) bool {
	if since <= g.lo {
		return false
	}
	g.lo = since
	if g.hi > 0 && g.lo >= g.hi {
		g.hi = 0
	}
	return true
}

// acceptedAfter learns from an acceptance up after the recipient's first
// refusal; it reports a change.
func (g *greyBracket) acceptedAfter(up time.Duration) bool {
	if up <= g.lo || up <= 0 || (g.hi > 0 && up >= g.hi) {
		return false
	}
	g.hi = up
	return true
}

// window is the window the destination will use (0 = none learned).
func (g greyBracket) window() time.Duration { return g.hi }
