package policy

import (
	"sort"
	"time"

	"golang.org/x/time/rate"
)

// Shared is the part of a destination's learned state that a cluster of
// nodes shares (issue 15, package cluster): the learned levels with the
// time of their last decrease, the pause and its half-open state, and the
// greylisting bracket. The policy logic stays here; a cluster only carries
// these values between nodes (Shared reads them, Adopt installs what
// another node learned).
type Shared struct {
	Conc        int        // current concurrency limit
	ConcCut     time.Time  // its last decrease (zero: none)
	Rate        rate.Limit // current rate, 0 = unlimited
	RateCut     time.Time  // its last decrease (zero: none)
	PausedUntil time.Time  // end of the pause or suspension in force (zero or past: none)
	HalfOpen    bool       // a pause began and no reply has reopened the destination since
	GreyLo      time.Duration
	GreyHi      time.Duration
}

// Shared returns the shareable state of name as this node knows it.
func (p *Policy) Shared(name string) Shared {
	p.mu.Lock()
	defer p.mu.Unlock()
	return sharedOf(p.get(name))
}

func sharedOf(d *dest) Shared {
	return Shared{
		Conc: d.conc.level, ConcCut: d.conc.lastCut,
		Rate: d.rate.rate, RateCut: d.rate.ceil.lastCut,
		PausedUntil: d.blockedUntil(), HalfOpen: d.pause.halfOpen,
		GreyLo: d.grey.lo, GreyHi: d.grey.hi,
	}
}

// Adopt installs what the cluster knows of name, learned by any node, and
// returns the state that results. Each field is taken only when it is
// news: a level the cluster set (within this node's maxima: a runtime or
// configured maximum is never exceeded), a later decrease (so that this
// node does not cut again within DecreaseWindow of a cut another node
// made: one decrease per window cluster-wide), a longer pause (no
// session until it ends, then the half-open probe: the cluster admits
// one probe for all nodes), a reopening (another node's probe succeeded),
// and a narrower greylisting bracket. A zero field says nothing.
func (p *Policy) Adopt(name string, s Shared) Shared {
	now := p.o.Now()
	p.mu.Lock()
	d := p.get(name)
	changed := false
	if s.Conc > 0 {
		c := min(max(s.Conc, p.o.MinConcurrency), d.maxConc())
		if c != d.conc.level {
			if c < d.conc.level {
				d.slow.end()
			}
			d.conc.level = c
			changed = true
		}
	}
	if s.ConcCut.After(d.conc.lastCut) {
		d.conc.lastCut = s.ConcCut
		d.slow.end()
		changed = true
	}
	if s.Rate > 0 && s.Rate != d.rate.rate {
		r := s.Rate
		if m := d.maxRate(); m > 0 && r > m {
			r = m
		}
		if r != d.rate.rate {
			d.rate.set(r, now)
			changed = true
		}
	}
	if s.RateCut.After(d.rate.ceil.lastCut) {
		d.rate.ceil.lastCut = s.RateCut
		changed = true
	}
	switch {
	case s.PausedUntil.After(now) && s.PausedUntil.After(d.blockedUntil()):
		d.pause.block(s.PausedUntil)
		changed = true
	case !s.HalfOpen && !s.PausedUntil.After(now) && !d.blocked(now) && d.pause.halfOpen:
		d.pause.reopen()
		changed = true
	}
	if s.GreyLo > d.grey.lo {
		d.grey.refusedAfter(s.GreyLo)
		changed = true
	}
	if s.GreyHi > 0 && d.grey.acceptedAfter(s.GreyHi) {
		changed = true
	}
	var save *pendingSave
	if changed {
		d.lastChange = now
		d.version++
		save = p.snapshotForSave(d)
	}
	out := sharedOf(d)
	p.mu.Unlock()
	p.save(save)
	return out
}

// RuntimeLimits returns every destination in memory that has runtime
// maxima (SetLimits), by name: what a node publishes to its cluster when
// the cluster's copy was lost.
func (p *Policy) RuntimeLimits() map[string]Limits {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]Limits{}
	for _, d := range p.dests.All() {
		if d.rtLim != nil {
			out[d.name] = *d.rtLim
		}
	}
	return out
}

// Names lists the destinations in memory, sorted.
func (p *Policy) Names() []string {
	p.mu.Lock()
	out := make([]string, 0, p.dests.Len())
	for _, d := range p.dests.All() {
		out = append(out, d.name)
	}
	p.mu.Unlock()
	sort.Strings(out)
	return out
}

// DecreaseWindow is the window within which a destination's refusals are
// one signal (one decrease per window; policy.decrease_window).
func (p *Policy) DecreaseWindow() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.o.DecreaseWindow
}

// RateWaited records that a message to name waited for a rate token of
// the cluster's shared bucket (package cluster): the rate holds mail back
// there as when the local bucket makes it wait, which is what lets the
// rate grow (see rateAIMD.grow).
func (p *Policy) RateWaited(name string) {
	now := p.o.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.get(name).rate.waited = now
}
