package timeline

import (
	"math"
	"time"
)

// point is one Step of one destination. The limits are those of the
// latest reading in the step (a step line: the value in force when the
// step ended or, for the current step, now); sessions in use and the
// state keep the highest reading, so that a peak or a pause shorter than
// a step is not lost between two samples; the counts add up.
type point struct {
	slot    int64 // unix time / Step; a point whose slot is not the one asked for is stale and reads as empty
	sampled bool  // at least one reading of the policy fell in this step
	state   State
	// Concurrency limit (the AIMD level), its ceiling, and sessions in
	// use. Saturating: no destination comes near 65,535 sessions.
	conc, maxConc, active uint16
	// Rate limit and its ceiling, messages/s; 0 = unlimited.
	rate, maxRate float32
	// Transactions started (what the rate limit meters), recipients
	// delivered, 421 replies, and other refusals (every deferral, bounce
	// or expiry whose reply was not a 421).
	msgs, sent, r421, refused uint32
}

// ring is the last Points steps of one destination, indexed by slot
// modulo Points: fixed memory, no allocation after creation, and a step
// nobody wrote since it last came round reads as empty.
type ring struct{ p [Points]point }

// slotOf is the step that t falls in.
func slotOf(t time.Time) int64 {
	return floorDiv(t.UnixNano(), int64(Step))
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func index(slot int64) int64 {
	i := slot % Points
	if i < 0 {
		i += Points
	}
	return i
}

// at returns the point of slot for writing, clearing what an older
// slot left there.
func (r *ring) at(slot int64) *point {
	p := &r.p[index(slot)]
	if p.slot != slot {
		*p = point{slot: slot}
	}
	return p
}

// get returns the point of slot, or false when nothing was written to
// it (the slot wrapped out or was never used).
func (r *ring) get(slot int64) (point, bool) {
	p := r.p[index(slot)]
	return p, p.slot == slot
}

// record folds one reading of the policy into p.
func (p *point) record(s Sample) {
	p.sampled = true
	p.conc, p.maxConc = sat16(s.Concurrency), sat16(s.MaxConcurrency)
	p.rate, p.maxRate = float32(s.Rate), float32(s.MaxRate)
	p.active = max(p.active, sat16(s.Active))
	p.state = max(p.state, s.State)
}

func sat16(n int) uint16 {
	return uint16(min(max(n, 0), math.MaxUint16))
}

func inc(n *uint32) {
	if *n < math.MaxUint32 {
		*n++
	}
}

// weight is how busy the point was: attempts of every outcome.
func (p *point) weight() int {
	return int(p.msgs) + int(p.sent) + int(p.r421) + int(p.refused)
}

// maxBands bounds the pauses kept per destination. A destination paused
// more than this often within an hour shows its latest pauses only; the
// state letter of each step still says which steps were paused.
const maxBands = 32

// band is one pause or suspension: from when it was first seen until the
// time the policy gave (or the reading that found it over early).
type band struct {
	from, until time.Time
	state       State
}

// bands is a ring of the latest pauses of one destination.
type bands struct {
	b    [maxBands]band
	next int // the slot to overwrite
	n    int // how many are set
}

func (b *bands) last() *band {
	if b.n == 0 {
		return nil
	}
	return &b.b[(b.next-1+maxBands)%maxBands]
}

// record folds one reading into the bands: a pause seen at at opens a
// band or extends the one still running; a reading that finds the
// destination no longer paused before the band's end (an operator's
// resume, a limit raised) cuts the band there.
func (b *bands) record(at time.Time, s Sample) {
	l := b.last()
	if s.State >= Paused && s.PausedUntil.After(at) {
		if l != nil && !l.until.Before(at) && l.state == s.State {
			if s.PausedUntil.After(l.until) {
				l.until = s.PausedUntil
			}
			return
		}
		if l != nil && l.until.After(at) {
			l.until = at // a suspension that replaced a pause, or the reverse
		}
		b.b[b.next] = band{from: at, until: s.PausedUntil, state: s.State}
		b.next = (b.next + 1) % maxBands
		b.n = min(b.n+1, maxBands)
		return
	}
	if l != nil && l.until.After(at) {
		l.until = at
	}
}

// since yields the bands that end after t, oldest first.
func (b *bands) since(t time.Time) []band {
	out := make([]band, 0, b.n)
	for i := b.n; i >= 1; i-- {
		x := b.b[(b.next-i+maxBands)%maxBands]
		if x.until.After(t) {
			out = append(out, x)
		}
	}
	return out
}
