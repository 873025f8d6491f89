package policy

import (
	"encoding/json"
	"fmt"
	"time"

	"golang.org/x/time/rate"
)

// persisted is the JSON record of one destination. It holds what must
// survive a restart: pauses, backoff step, learned limits, runtime limits,
// messages per connection and the greylist bracket.
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
}

type pendingSave struct {
	name    string
	version uint64
	data    []byte
}

// snapshotForSave marshals d when it changed since the last save. Caller
// holds p.mu; the write itself happens after unlocking.
func (p *Policy) snapshotForSave(d *dest) *pendingSave {
	if p.o.Store == nil || d.version == d.marshaled {
		return nil
	}
	d.marshaled = d.version
	ps := persisted{
		State: d.state, PausedUntil: d.pausedUntil, Step: d.step, Concurrency: d.conc, Ceil: d.ceil.level, RateCeil: d.rceil.level,
		Rate: float64(d.rate), RateTop: float64(d.rateTop), Runtime: d.rtLim, MsgsPerConn: d.msgsPerConn,
		GreyLo: d.greyLo, GreyHi: d.greyHi, HoldUntil: d.holdUntil, LastChange: d.lastChange,
	}
	if ps.State == StateProbing {
		// A probe does not survive a restart; the next Admit probes again.
		ps.State = StatePaused
	}
	b, err := json.Marshal(ps)
	if err != nil {
		p.log.Error("policy: marshal destination state", "dest", d.name, "err", err)
		return nil
	}
	return &pendingSave{name: d.name, version: d.version, data: b}
}

// save writes s unless a newer version of that destination was already
// written: saves run outside p.mu, so two may race.
func (p *Policy) saveErr(s *pendingSave) error {
	if s == nil {
		return nil
	}
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	if p.saved[s.name] >= s.version {
		return nil
	}
	if err := p.o.Store.SaveDestination(s.name, s.data); err != nil {
		return fmt.Errorf("policy: save destination %s: %w", s.name, err)
	}
	p.saved[s.name] = s.version
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
}
