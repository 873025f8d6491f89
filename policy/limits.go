package policy

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"golang.org/x/time/rate"
)

// Limits are runtime maxima of one destination, set by the operator.
// They persist across restarts until ResetLimits. Rate 0 = no cap.
type Limits struct {
	MaxConcurrency int
	Rate           rate.Limit
}

// ErrBadLimits is returned by SetLimits for an impossible value.
var ErrBadLimits = errors.New("policy: bad limits")

// SetLimits sets the runtime maxima of dest. The current (learned) levels
// are clamped down to them at once; when the maxima rise, additive
// increase climbs to them as successes come.
func (p *Policy) SetLimits(name string, l Limits) error {
	if l.MaxConcurrency < 1 || l.Rate < 0 {
		return fmt.Errorf("%w: max_concurrency %d, rate %v", ErrBadLimits, l.MaxConcurrency, float64(l.Rate))
	}
	now := p.o.Now()
	p.mu.Lock()
	d := p.get(name)
	d.rtLim = &l
	p.clamp(d, now)
	s := p.snapshotForSave(d)
	p.mu.Unlock()
	return p.saveErr(s)
}

// ResetLimits drops the runtime maxima of dest: back to the config.
func (p *Policy) ResetLimits(name string) error {
	now := p.o.Now()
	p.mu.Lock()
	d := p.get(name)
	d.rtLim = nil
	p.clamp(d, now)
	s := p.snapshotForSave(d)
	p.mu.Unlock()
	return p.saveErr(s)
}

// clamp brings current levels within the maxima. Caller holds p.mu.
func (p *Policy) clamp(d *dest, now time.Time) {
	d.conc.clamp(d.maxConc())
	d.rate.clamp(d.maxRate(), now)
	d.lastChange = now
	d.version++
}

// DestinationState is what the admin surface shows of one destination.
type DestinationState struct {
	Name                                string
	State                               string // open|paused|probing|suspended
	PausedUntil                         time.Time
	Concurrency, MaxConcurrency, Active int
	Rate, MaxRate                       rate.Limit // 0 = unlimited
	MsgsPerConn                         int
	GreylistWindow                      time.Duration
	Counts                              map[Class]int // last hour
	LastReply                           string
	LastChange                          time.Time
}

func (d *dest) public(now time.Time) DestinationState {
	s := DestinationState{
		Name: d.name, State: d.stateAt(now), Concurrency: d.conc.level, MaxConcurrency: d.maxConc(), Active: d.active,
		Rate: d.rate.rate, MaxRate: d.maxRate(), MsgsPerConn: d.perConn.limit, GreylistWindow: d.grey.window(),
		Counts: d.lastHour(now), LastReply: d.lastReply, LastChange: d.lastChange,
	}
	if s.State == StatePaused || s.State == StateSuspended {
		s.PausedUntil = d.blockedUntil()
	}
	return s
}

// Snapshot returns every destination in memory, sorted by name: those
// used within the last idle period (IdleAfter) and those with something
// in force (see Sweep). A destination dropped from memory is still
// returned by State.
func (p *Policy) Snapshot() []DestinationState {
	now := p.o.Now()
	p.mu.Lock()
	out := make([]DestinationState, 0, p.dests.Len())
	for _, d := range p.dests.All() {
		out = append(out, d.public(now))
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// State returns one destination, if known (in memory or in the store).
func (p *Policy) State(name string) (DestinationState, bool) {
	now := p.o.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.find(name)
	if !ok {
		return DestinationState{}, false
	}
	return d.public(now), true
}

// Resume ends a pause of dest early, at the operator's request (`queue
// flush --force`). The destination becomes half-open: one probe session
// goes first, as after any pause, so a receiver that still refuses is not
// hit with full concurrency. It reports whether dest was paused.
func (p *Policy) Resume(name string) bool {
	now := p.o.Now()
	p.mu.Lock()
	d, ok := p.find(name)
	if !ok || !d.blocked(now) {
		p.mu.Unlock()
		return false
	}
	if d.pause.in(now) {
		d.pause.until = now
	}
	if d.susp.in(now) {
		d.susp.until = now
	}
	d.lastChange = now
	d.version++
	s := p.snapshotForSave(d)
	p.mu.Unlock()
	p.save(s)
	return true
}
