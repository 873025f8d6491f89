package policy

import (
	"encoding/json"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Destination states (DestinationState.State).
const (
	StateOpen      = "open"
	StatePaused    = "paused"
	StateProbing   = "probing"
	StateSuspended = "suspended"
)

// dest is the in-memory state of one destination. Guarded by Policy.mu.
type dest struct {
	name string

	cfgConc int        // configured maximum concurrency
	cfgRate rate.Limit // configured rate, 0 = unlimited
	rtLim   *Limits    // runtime maxima (SetLimits), nil = config

	conc    int        // current concurrency limit (AIMD)
	slow    bool       // slow start: +1 concurrency per success until the maximum or the first refusal
	ceil    ceiling    // concurrency at the last connection refusal
	rceil   ceiling    // rate at the last rate refusal
	rate    rate.Limit // current rate, 0 = unlimited
	rateTop rate.Limit // with no configured cap: above this the cap is lifted again
	limiter *rate.Limiter

	active       int
	state        string // StateOpen, StatePaused, StateSuspended, StateProbing
	pausedUntil  time.Time
	probing      bool // a probe session is in flight
	older        int  // sessions from before the probe still open
	step         int  // pause backoff step; reset by success
	lastDecrease time.Time
	lastConnCut  time.Time // the last multiplicative decrease of concurrency
	successes    int       // consecutive
	limited      bool      // the concurrency limit held sessions back since the last increase
	admits       int       // sessions granted, for the messages-per-connection estimate
	oks          int       // successes, likewise

	msgsPerConn int           // 0 = unlimited
	greyLo      time.Duration // longest refusal interval seen (window is longer)
	greyHi      time.Duration // shortest accepted interval seen (window is at most this); 0 = unknown

	okTimes     [256]time.Time // recent successes, for the delivery-rate estimate (enough for a few hundred msg/s over 1 s)
	okNext      int
	counts      [60]minuteCount
	lastReply   string
	lastChange  time.Time
	lastAttempt time.Time
	lastThrottl time.Time

	holdUntil   time.Time  // no additive increase before (a throttle rule's `for`)
	lastRateCut time.Time  // the last multiplicative decrease of the rate
	rateRefused rate.Limit // delivery rate at the last rate refusal: growth above it is linear
	rateProbeAt time.Time  // near rateRefused, the next rate step waits until then

	version   uint64        // bumped on every persisted change
	marshaled uint64        // version last handed to the store
	written   atomic.Uint64 // version last written to the store (under Policy.saveMu)
	disk      *persisted    // what a reload would read (rest image, see restImage); nil = nothing stored
	uses      uint64        // every get; eviction checks nobody used d while its state was being saved
}

type minuteCount struct {
	minute int64
	c      map[Class]int
}

func (p *Policy) newDest(name string) *dest {
	d := &dest{name: name, state: StateOpen}
	d.cfgConc, d.cfgRate = p.configLimits(name)
	d.conc = p.startConc(d)
	d.slow = d.conc < d.maxConc()
	d.setRate(d.maxRate(), p.o.Now())
	return d
}

// startConc is the concurrency of a destination we know nothing about.
// Slow start (as TCP): InitialConcurrency sessions, and one more per
// success, so the limit doubles every round trip. A receiver that caps
// sessions refuses one extra session, not the maximum minus its cap all
// at once.
func (p *Policy) startConc(d *dest) int {
	mc := d.maxConc()
	if ic := p.o.InitialConcurrency; ic > 0 && ic < mc {
		return max(ic, p.o.MinConcurrency)
	}
	return mc
}

// get returns the state of dest, reading it back from the store or
// creating it when it is not in memory, and counts a use. Caller holds
// p.mu.
func (p *Policy) get(name string) *dest {
	now := p.o.Now()
	if d, ok := p.dests.Get(name); ok {
		d.uses++
		p.dests.Touch(name, now)
		return d
	}
	d, ok := p.load(name)
	if !ok {
		d = p.newDest(name)
	}
	d.uses++
	p.dests.Put(name, d, now)
	return d
}

// find returns the state of dest when it is in memory or in the store,
// without creating it or counting a use. Caller holds p.mu.
func (p *Policy) find(name string) (*dest, bool) {
	if d, ok := p.dests.Get(name); ok {
		return d, true
	}
	d, ok := p.load(name)
	if ok {
		p.dests.Put(name, d, p.o.Now())
	}
	return d, ok
}

// load reads the stored state of a destination that is not in memory
// (dropped after an idle period, see Sweep). Caller holds p.mu: the read
// is one small bbolt view, and holding the lock keeps two callers from
// loading the same destination twice.
func (p *Policy) load(name string) (*dest, bool) {
	if p.o.Store == nil {
		return nil, false
	}
	b, err := p.o.Store.LoadDestination(name)
	if err != nil {
		p.log.Error("policy: reading destination state failed; it starts from the config", "dest", name, "err", err)
		return nil, false
	}
	if b == nil {
		return nil, false
	}
	var ps persisted
	if err := json.Unmarshal(b, &ps); err != nil {
		p.log.Warn("policy: ignoring unreadable destination state", "dest", name, "err", err)
		return nil, false
	}
	p.registerMembers(name, ps.Members)
	d := p.newDest(name)
	d.restore(ps, p)
	return d, true
}

// registerMembers records that the override domains a stored record
// lists are grouped into name, unless a grouping is already known (a live
// lookup wins over a record). The grouping is not fresh: the next message
// to the domain looks it up again. Caller holds p.mu.
func (p *Policy) registerMembers(name string, members []string) {
	for _, m := range members {
		if _, ok := p.overrides[m]; !ok {
			continue
		}
		if _, known := p.domains.Get(m); !known {
			p.domains.Put(m, grouping{dest: name}, p.o.Now())
		}
	}
}

func (d *dest) maxConc() int {
	if d.rtLim != nil && d.rtLim.MaxConcurrency > 0 {
		return d.rtLim.MaxConcurrency
	}
	return d.cfgConc
}

// maxRate is the rate ceiling; 0 = unlimited.
func (d *dest) maxRate() rate.Limit {
	if d.rtLim != nil {
		return d.rtLim.Rate
	}
	return d.cfgRate
}

// setRate installs a new current rate (0 = unlimited). The burst is a
// tenth of a second's worth, at least 1: waiting mail is paced, never
// released in one storm (design §4, "no storms").
func (d *dest) setRate(r rate.Limit, now time.Time) {
	d.rate = r
	if r <= 0 {
		d.limiter = nil
		return
	}
	burst := int(float64(r) / 10)
	if burst < 1 {
		burst = 1
	}
	if d.limiter == nil {
		d.limiter = rate.NewLimiter(r, burst)
		return
	}
	d.limiter.SetLimitAt(now, r)
	d.limiter.SetBurstAt(now, burst)
}

// observedRate estimates successes per second: over the last second when
// busy, else over the last 10 s.
func (d *dest) observedRate(now time.Time) rate.Limit {
	// Prefer the last second when it holds enough successes: at a
	// refusal that is the pace the receiver just saw, undiluted by an
	// earlier pause.
	var recent int
	for _, t := range d.okTimes {
		if !t.IsZero() && !t.After(now) && now.Sub(t) <= time.Second {
			recent++
		}
	}
	if recent >= 20 {
		return rate.Limit(recent)
	}
	var n int
	oldest := now
	for _, t := range d.okTimes {
		if t.IsZero() || now.Sub(t) > 10*time.Second || t.After(now) {
			continue
		}
		n++
		if t.Before(oldest) {
			oldest = t
		}
	}
	if n == 0 {
		return 0
	}
	span := now.Sub(oldest)
	if span < time.Second {
		span = time.Second
	}
	return rate.Limit(float64(n) / span.Seconds())
}

func (d *dest) count(c Class, now time.Time) {
	m := now.Unix() / 60
	b := &d.counts[m%60]
	if b.minute != m || b.c == nil {
		b.minute = m
		b.c = map[Class]int{}
	}
	b.c[c]++
}

func (d *dest) lastHour(now time.Time) map[Class]int {
	m := now.Unix() / 60
	out := map[Class]int{}
	for _, b := range d.counts {
		if b.c != nil && b.minute > m-60 && b.minute <= m {
			for k, v := range b.c {
				out[k] += v
			}
		}
	}
	return out
}

// stateAt is the state as seen at now: a pause that has ended is
// half-open (probing).
func (d *dest) stateAt(now time.Time) string {
	if (d.state == StatePaused || d.state == StateSuspended) && !now.Before(d.pausedUntil) {
		return StateProbing
	}
	return d.state
}
