package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/time/rate"
)

// recordVersion is the version of the stored encoding of a destination
// (record). Version 1 was the flat record of issue 9, with no "v" field;
// version 2 had the rate gates of the first adaptive law (a crossing
// ceiling, the rate of the last refusal, a top); decodeRecord reads all
// three.
const recordVersion = 3

// record is the stored state of one destination: everything it learned,
// one part per mechanism, so that a restart (or a reload after an idle
// period) resumes exactly where it stopped. What is not stored is what
// is about the process, not the receiver: sessions and a probe in flight,
// the recent successes the delivered pace is measured from, the counts
// of the admin view.
type record struct {
	V           int         `json:"v"`
	Slow        bool        `json:"slow,omitempty"` // in slow start
	Conc        concRecord  `json:"conc"`
	Rate        rateRecord  `json:"rate,omitzero"`
	Pause       pauseRecord `json:"pause,omitzero"`
	Suspend     time.Time   `json:"suspend_until,omitzero"`
	Grey        greyRecord  `json:"grey,omitzero"`
	MsgsPerConn int         `json:"msgs_per_conn,omitempty"`
	Runtime     *Limits     `json:"runtime,omitempty"`
	LastChange  time.Time   `json:"last_change,omitzero"`
	Members     []string    `json:"members,omitempty"` // override domains grouped into this destination
}

type ceilingRecord struct {
	Level float64       `json:"level,omitempty"`
	Hold  time.Duration `json:"hold,omitempty"`
	Until time.Time     `json:"until,omitzero"`
}

type concRecord struct {
	Level   int           `json:"level"`
	Ceil    ceilingRecord `json:"ceil,omitzero"`
	LastCut time.Time     `json:"last_cut,omitzero"`
	Frozen  time.Time     `json:"frozen,omitzero"`
}

type rateRecord struct {
	Rate    float64       `json:"rate,omitempty"`  // 0 = unlimited
	Limit   float64       `json:"limit,omitempty"` // learned; 0 = nothing learned
	ProbeAt time.Time     `json:"probe_at,omitzero"`
	Gap     time.Duration `json:"gap,omitempty"`
	Gain    float64       `json:"gain,omitempty"`
	LastCut time.Time     `json:"last_cut,omitzero"`
	Frozen  time.Time     `json:"frozen,omitzero"`
	// The rest of the rate law's learning (rateCeiling): the last
	// confirmed probe, whether the destination is recovering from a
	// drop, the last rate refusal (the spacing of the next one counts
	// from it), and whether the receiver punishes refusals.
	ConfirmedAt time.Time `json:"confirmed_at,omitzero"`
	Recovering  bool      `json:"recovering,omitempty"`
	DropAt      time.Time `json:"drop_at,omitzero"`
	LimitAt     time.Time `json:"limit_at,omitzero"`
	Before      float64   `json:"before,omitempty"`
	PrevLimit   float64   `json:"prev_limit,omitempty"`
	RaisedAt    time.Time `json:"raised_at,omitzero"`
	RefusedAt   time.Time `json:"last_refusal,omitzero"`
	Wary        bool      `json:"wary,omitempty"`
}

type pauseRecord struct {
	Until    time.Time `json:"until,omitzero"`
	Step     int       `json:"step,omitempty"`
	HalfOpen bool      `json:"half_open,omitempty"`
}

type greyRecord struct {
	Lo time.Duration `json:"lo,omitempty"`
	Hi time.Duration `json:"hi,omitempty"`
}

// recordV1 is the flat record written before version 2.
type recordV1 struct {
	State       string        `json:"state"`
	PausedUntil time.Time     `json:"paused_until,omitzero"`
	Step        int           `json:"step,omitempty"`
	Concurrency int           `json:"concurrency"`
	Ceil        float64       `json:"ceil,omitempty"`
	RateCeil    float64       `json:"rate_ceil,omitempty"`
	Rate        float64       `json:"rate,omitempty"`
	RateTop     float64       `json:"rate_top,omitempty"`
	Runtime     *Limits       `json:"runtime,omitempty"`
	MsgsPerConn int           `json:"msgs_per_conn,omitempty"`
	GreyLo      time.Duration `json:"grey_lo,omitempty"`
	GreyHi      time.Duration `json:"grey_hi,omitempty"`
	HoldUntil   time.Time     `json:"hold_until,omitzero"`
	LastChange  time.Time     `json:"last_change,omitzero"`
	RateRefused float64       `json:"rate_refused,omitempty"`
	Members     []string      `json:"members,omitempty"`
}

// decodeRecord reads a stored record of any version.
func decodeRecord(b []byte) (record, error) {
	var v struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return record{}, err
	}
	switch v.V {
	case 0:
		var o recordV1
		if err := json.Unmarshal(b, &o); err != nil {
			return record{}, err
		}
		return o.upgrade(), nil
	case 2:
		var r record
		var v2 struct {
			Rate struct {
				Ceil      ceilingRecord `json:"ceil"`
				RefusedAt float64       `json:"refused_at"`
				Top       float64       `json:"top"`
			} `json:"rate"`
		}
		if err := errors.Join(json.Unmarshal(b, &r), json.Unmarshal(b, &v2)); err != nil {
			return record{}, err
		}
		r.V = recordVersion
		if v2.Rate.Ceil.Level > 0 || v2.Rate.RefusedAt > 0 || v2.Rate.Top > 0 {
			// The rate was learned from refusals.
			r.Rate.Limit = r.Rate.Rate
		}
		return r, nil
	case recordVersion:
		var r record
		err := json.Unmarshal(b, &r)
		return r, err
	}
	return record{}, fmt.Errorf("unknown destination record version %d", v.V)
}

// upgrade maps a version 1 record. Version 1 kept no ceiling holds, no
// time of the last cuts and no probe schedule: a restart from it allows
// one crossing attempt, as version 1 did, and a rate learned from
// refusals is the learned rate. A destination that never refused us was
// in slow start.
func (o recordV1) upgrade() record {
	r := record{
		V:           recordVersion,
		Slow:        o.Ceil == 0 && o.RateCeil == 0 && o.Rate == 0 && o.Step == 0,
		Conc:        concRecord{Level: o.Concurrency, Ceil: ceilingRecord{Level: o.Ceil}, Frozen: o.HoldUntil},
		Rate:        rateRecord{Rate: o.Rate, Frozen: o.HoldUntil},
		Pause:       pauseRecord{Step: o.Step},
		Grey:        greyRecord{Lo: o.GreyLo, Hi: o.GreyHi},
		MsgsPerConn: o.MsgsPerConn,
		Runtime:     o.Runtime,
		LastChange:  o.LastChange,
		Members:     o.Members,
	}
	if o.RateRefused > 0 || o.RateCeil > 0 || o.RateTop > 0 {
		// The rate was learned from refusals.
		r.Rate.Limit = o.Rate
	}
	switch o.State {
	case StatePaused, StateProbing:
		r.Pause.Until, r.Pause.HalfOpen = o.PausedUntil, true
	case StateSuspended:
		r.Suspend, r.Pause.HalfOpen = o.PausedUntil, true
	}
	return r
}

func (c ceiling) record() ceilingRecord {
	return ceilingRecord{Level: c.level, Hold: c.hold, Until: c.until}
}

func (r ceilingRecord) ceiling() ceiling {
	return ceiling{level: r.Level, hold: r.Hold, until: r.Until}
}

type pendingSave struct {
	d       *dest
	version uint64
	data    []byte
}

// image is what the store keeps of d. Caller holds p.mu.
func (p *Policy) image(d *dest) record {
	c := &d.rate.ceil
	rt := d.rate.rate
	if c.probe > 0 {
		// A probe does not survive a restart: the learned rate does.
		rt = c.capped(c.limit, d.maxRate())
	}
	r := record{
		V:    recordVersion,
		Slow: d.slow.on,
		Conc: concRecord{Level: d.conc.level, Ceil: d.conc.ceil.record(), LastCut: d.conc.lastCut, Frozen: d.conc.frozen},
		Rate: rateRecord{Rate: float64(rt), Limit: float64(c.limit), ProbeAt: c.probeAt, Gap: c.gap, Gain: c.gain,
			LastCut: c.lastCut, Frozen: c.frozen, ConfirmedAt: c.confirmedAt, Recovering: c.recovering, DropAt: c.dropAt, LimitAt: c.limitAt, Before: float64(c.before), PrevLimit: float64(c.prevLimit), RaisedAt: c.raisedAt, RefusedAt: c.refusedAt,
			Wary: c.wary},
		Pause:       pauseRecord{Until: d.pause.until, Step: d.pause.step, HalfOpen: d.pause.halfOpen},
		Suspend:     d.susp.until,
		Grey:        greyRecord{Lo: d.grey.lo, Hi: d.grey.hi},
		MsgsPerConn: d.perConn.limit,
		Runtime:     d.rtLim,
		LastChange:  d.lastChange,
		Members:     p.members(d.name),
	}
	if !r.Pause.HalfOpen {
		// The end of a past pause means nothing once reopened.
		r.Pause.Until = time.Time{}
	}
	return r
}

// restImage is the image of d as far as a reload after an idle period
// must reproduce it: without the time of the last change (shown, not
// acted on) and, in slow start, with the starting concurrency, since slow
// start begins again after an idle period (as TCP's does, RFC 5681 §4.1:
// what was learned about a path that has been quiet is stale). Caller
// holds p.mu.
func (p *Policy) restImage(d *dest) record {
	r := p.image(d)
	r.LastChange = time.Time{}
	if d.slow.on {
		r.Conc.Level = p.startConc(d)
	}
	if r.Runtime != nil {
		l := *r.Runtime
		r.Runtime = &l
	}
	return r
}

// freshImage is the rest image of a destination created from the config.
func (p *Policy) freshImage(d *dest) record {
	f := &dest{name: d.name, cfgConc: d.cfgConc, cfgRate: d.cfgRate}
	f.conc.level = p.startConc(f)
	f.slow.on = f.conc.level < f.maxConc()
	f.rate.rate = f.maxRate()
	return p.restImage(f)
}

// sameImage compares two images by their encoding: times compare by the
// instant they name, whatever their monotonic reading.
func sameImage(a, b record) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return errors.Join(err1, err2) == nil && bytes.Equal(x, y)
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

// restore applies a stored record to a fresh dest.
func (d *dest) restore(r record, p *Policy) {
	now := p.o.Now()
	d.rtLim = r.Runtime
	d.pause = pauseProbe{until: r.Pause.Until, step: r.Pause.Step, halfOpen: r.Pause.HalfOpen}
	d.susp.until = r.Suspend
	if r.Conc.Level >= p.o.MinConcurrency {
		d.conc.level = r.Conc.Level
	}
	d.conc.clamp(d.maxConc())
	d.conc.ceil = r.Conc.Ceil.ceiling()
	d.conc.lastCut, d.conc.frozen = r.Conc.LastCut, r.Conc.Frozen
	d.slow.on = r.Slow && d.conc.level < d.maxConc()
	d.rate.ceil = rateCeiling{
		limit: rate.Limit(r.Rate.Limit), probeAt: r.Rate.ProbeAt, gap: r.Rate.Gap, gain: r.Rate.Gain,
		lastCut: r.Rate.LastCut, frozen: r.Rate.Frozen, confirmedAt: r.Rate.ConfirmedAt, recovering: r.Rate.Recovering, dropAt: r.Rate.DropAt, limitAt: r.Rate.LimitAt, before: rate.Limit(r.Rate.Before), prevLimit: rate.Limit(r.Rate.PrevLimit), raisedAt: r.Rate.RaisedAt,
		refusedAt: r.Rate.RefusedAt, wary: r.Rate.Wary,
	}
	rt := rate.Limit(r.Rate.Rate)
	if mr := d.maxRate(); mr > 0 && (rt <= 0 || rt > mr) {
		rt = mr
	}
	d.rate.set(rt, now)
	d.perConn.limit = r.MsgsPerConn
	d.grey = greyBracket{lo: r.Grey.Lo, hi: r.Grey.Hi}
	d.lastChange = r.LastChange
	rest := p.restImage(d)
	d.disk = &rest
}

// SplitLimits returns a stored destination state without its runtime
// limits (SetLimits), and those limits (nil when it has none): the queue
// export carries them as records of their own. rest is the state in the
// current record version.
func SplitLimits(state []byte) (rest []byte, l *Limits, err error) {
	r, err := decodeRecord(state)
	if err != nil {
		return nil, nil, err
	}
	l, r.Runtime = r.Runtime, nil
	rest, err = json.Marshal(r)
	return rest, l, err
}

// JoinLimits returns state with l as its runtime limits; nil state is a
// destination with no stored state yet, which starts as a new one (in
// slow start, from the config). A state that already has runtime limits
// keeps them (set is false): on an import, the receiving relay's own
// operator decision wins.
func JoinLimits(state []byte, l Limits) (out []byte, set bool, err error) {
	if l.MaxConcurrency < 1 || l.Rate < 0 {
		return nil, false, fmt.Errorf("%w: max_concurrency %d, rate %v", ErrBadLimits, l.MaxConcurrency, float64(l.Rate))
	}
	r := record{V: recordVersion, Slow: true}
	if state != nil {
		if r, err = decodeRecord(state); err != nil {
			return nil, false, err
		}
		if r.Runtime != nil {
			return state, false, nil
		}
	}
	r.Runtime = &l
	out, err = json.Marshal(r)
	return out, err == nil, err
}
