package policy

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"golang.org/x/time/rate"
)

// persisted is the JSON record of one destination. It holds what must
// survive a restart: pauses, backoff step, learned limits, runtime limits,
// messages per connection, the greylist bracket, the rate of the last
// rate refusal and the override domains grouped into the destination.
type persisted struct {
	State       string        `json:"state"`
	PausedUntil time.Time     `json:"paused_until,omitzero"`
	Step        int           `json:"step,omitempty"`
	Concurrency int           `json:"concurrency"`
	Ceil        float64       `json:"ceil,omitempty"`
	RateCeil    float64       `json:"rate_ceil,omitempty"`
	Rate        float64       `json:"rate,omitempty"` // 0 = unlimited
	RateTop     float64       `json:"rate_top,omitempty"`
	Runtime     *Limits       `json:"runtime,omitempty"`
	MsgsPerConn int           `json:"msgs_per_conn,omitempty"`
	GreyLo      time.Duration `json:"grey_lo,omitempty"`
	GreyHi      time.Duration `json:"grey_hi,omitempty"`
	HoldUntil   time.Time     `json:"hold_until,omitzero"`
	LastChange  time.Time     `json:"last_change,omitzero"`
	RateRefused float64       `json:"rate_refused,omitempty"`
	Members     []string      `json:"members,omitempty"` // override domains grouped into this destination
}

type pendingSave struct {
	d       *dest
	version uint64
	data    []byte
}

// image is what the store keeps of d. Caller holds p.mu.
func (p *Policy) image(d *dest) persisted {
	ps := persisted{
		State: d.state, PausedUntil: d.pausedUntil, Step: d.step, Concurrency: d.conc, Ceil: d.ceil.level, RateCeil: d.rceil.level,
		Rate: float64(d.rate), RateTop: float64(d.rateTop), Runtime: d.rtLim, MsgsPerConn: d.msgsPerConn,
		GreyLo: d.greyLo, GreyHi: d.greyHi, HoldUntil: d.holdUntil, LastChange: d.lastChange,
		RateRefused: float64(d.rateRefused), Members: p.members(d.name),
	}
	switch ps.State {
	case StateProbing:
		// A probe does not survive a restart; the next Admit probes again.
		ps.State = StatePaused
	case StateOpen:
		ps.PausedUntil = time.Time{} // the end of a past pause means nothing
	}
	return ps
}

// restImage is the image of d as far as a reload after an idle period
// must reproduce it: without the time of the last change (shown, not
// acted on) and, in slow start, with the starting concurrency, since slow
// start begins again after an idle period (as TCP's does, RFC 5681 §4.1:
// what was learned about a path that has been quiet is stale). Caller
// holds p.mu.
func (p *Policy) restImage(d *dest) persisted {
	ps := p.image(d)
	ps.LastChange = time.Time{}
	if d.slow {
		ps.Concurrency = p.startConc(d)
	}
	if ps.Runtime != nil {
		l := *ps.Runtime
		ps.Runtime = &l
	}
	return ps
}

// freshImage is the rest image of a destination created from the config.
func (p *Policy) freshImage(d *dest) persisted {
	return persisted{State: StateOpen, Concurrency: p.startConc(d), Rate: float64(d.cfgRate), Members: p.members(d.name)}
}

func sameImage(a, b persisted) bool {
	if (a.Runtime == nil) != (b.Runtime == nil) || (a.Runtime != nil && *a.Runtime != *b.Runtime) {
		return false
	}
	if !slices.Equal(a.Members, b.Members) {
		return false
	}
	a.Runtime, b.Runtime, a.Members, b.Members = nil, nil, nil, nil
	return a.State == b.State && a.PausedUntil.Equal(b.PausedUntil) && a.HoldUntil.Equal(b.HoldUntil) &&
		a.LastChange.Equal(b.LastChange) && a.Step == b.Step && a.Concurrency == b.Concurrency &&
		a.Ceil == b.Ceil && a.RateCeil == b.RateCeil && a.Rate == b.Rate && a.RateTop == b.RateTop &&
		a.MsgsPerConn == b.MsgsPerConn && a.GreyLo == b.GreyLo && a.GreyHi == b.GreyHi && a.RateRefused == b.RateRefused
}

// snapshotForSave marshals d when it changed since the last save. Caller
// holds p.mu; the write itself happens after unlocking.
func (p *Policy) snapshotForSave(d *dest) *pendingSave {
	if p.o.Store == nil || d.version == d.marshaled {
		return nil
	}
	d.marshaled = d.version
	b, err := json.Marshal(p.image(d))
	if err != nil {
		p.log.Error("policy: marshal destination state", "dest", d.name, "err", err)
		return nil
	}
	rest := p.restImage(d)
	d.disk = &rest
	return &pendingSave{d: d, version: d.version, data: b}
}

// save writes s unless a newer version of that destination was already
// written: saves run outside p.mu, so two may race. The written version
// lives in the dest itself, so a save of a dest already dropped from
// memory (and perhaps read back since as a new dest) is a no-op.
func (p *Policy) saveErr(s *pendingSave) error {
	if s == nil {
		return nil
	}
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	if s.d.written.Load() >= s.version {
		return nil
	}
	if err := p.o.Store.SaveDestination(s.d.name, s.data); err != nil {
		return fmt.Errorf("policy: save destination %s: %w", s.d.name, err)
	}
	s.d.written.Store(s.version)
	return nil
}

func (p *Policy) save(s *pendingSave) {
	if err := p.saveErr(s); err != nil {
		p.log.Error("policy: persist", "err", err)
	}
}

// restore applies a persisted record to a fresh dest.
func (d *dest) restore(ps persisted, p *Policy) {
	now := p.o.Now()
	d.rtLim = ps.Runtime
	switch ps.State {
	case StatePaused, StateSuspended:
		d.state = ps.State
		d.pausedUntil = ps.PausedUntil
	default:
		d.state = StateOpen
	}
	d.step = ps.Step
	if ps.Concurrency >= p.o.MinConcurrency {
		d.conc = ps.Concurrency
	}
	if mc := d.maxConc(); d.conc > mc {
		d.conc = mc
	}
	// The hold itself is not kept: after a restart one crossing attempt
	// is allowed, then holds grow again.
	d.ceil.level, d.rceil.level = ps.Ceil, ps.RateCeil
	// A destination that never refused us stays in slow start.
	d.slow = d.conc < d.maxConc() && ps.Ceil == 0 && ps.RateCeil == 0 && ps.Rate == 0 && d.step == 0
	d.rateTop = rate.Limit(ps.RateTop)
	r := rate.Limit(ps.Rate)
	if mr := d.maxRate(); mr > 0 && (r <= 0 || r > mr) {
		r = mr
	}
	d.setRate(r, now)
	d.msgsPerConn = ps.MsgsPerConn
	d.greyLo, d.greyHi = ps.GreyLo, ps.GreyHi
	d.holdUntil = ps.HoldUntil
	d.lastChange = ps.LastChange
	d.rateRefused = rate.Limit(ps.RateRefused)
	rest := p.restImage(d)
	d.disk = &rest
}
