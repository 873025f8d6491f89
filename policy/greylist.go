package policy

import (
	"strings"
	"time"
)

// greyRefusal tracks one greylisted recipient at one destination.
type greyRefusal struct {
	first, last time.Time
	n           int // refusals so far
}

func greyKey(dest, rcpt string) string { return dest + "\x00" + strings.ToLower(rcpt) }

// greyRefused records a greylist refusal and returns when the recipient
// is due again: the hinted delay, else the learned window counted from
// the first refusal, else GreylistDefault, plus GreylistMargin (not for
// the learned window, which includes it) and up to one margin of jitter.
//
// It teaches the destination's greyBracket.
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
	if rcpt != "" {
		p.grey[k] = g
	}
	var due time.Time
	margin := p.o.GreylistMargin
	switch {
	case v.Delay > 0:
		due = now.Add(v.Delay)
	case d.grey.hi > 0:
		// hi is a proven acceptance point and already holds the margin
		// of the round that learned it: adding it again would make
		// every round later than the last.
		due = g.first.Add(d.grey.hi)
		margin = 0
	case seen:
		// Came back too early and nothing is learned: wait 0.6 times as
		// long again as the time since the first refusal (×1.6 per
		// round). A default up to ~35% short of the window then costs
		// exactly one extra reply, even for a burst of recipients refused
		// together, and the acceptance lands within 1.6 × the default,
		// which keeps the learned upper bound tight; a much longer window
		// is found in a few rounds. The acceptance teaches hi, and
		// every later recipient goes straight to it.
		step := min(now.Sub(g.first)*3/5, p.o.RetryMax)
		due = now.Add(max(step, p.o.GreylistMargin))
		margin = 0 // the step overshoots enough; a margin would loosen hi
	default:
		w := p.o.GreylistDefault
		if d.grey.lo >= w {
			w = d.grey.lo + d.grey.lo/2
		}
		due = now.Add(w)
	}
	if due.Before(now) {
		due = now
	}
	return due.Add(margin + time.Duration(p.rnd()*float64(p.o.GreylistMargin)))
}

// greyAccepted learns the upper bound of the window from an acceptance.
func (p *Policy) greyAccepted(d *dest, rcpt string, now time.Time) {
	k := greyKey(d.name, rcpt)
	g, ok := p.grey[k]
	if !ok {
		return
	}
	delete(p.grey, k)
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
