package policy

import (
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

// dest is the in-memory state of one destination: one small value per
// mechanism, and what the admin view shows. Guarded by Policy.mu.
type dest struct {
	name string

	cfgConc int        // configured maximum concurrency
	cfgRate rate.Limit // configured rate, 0 = unlimited
	rtLim   *Limits    // runtime maxima (SetLimits), nil = config

	slow    slowStart
	conc    concAIMD
	rate    rateAIMD
	pause   pauseProbe
	susp    suspension
	grey    greyBracket
	canary  greyCanary
	perConn perConnection

	active int // sessions admitted and not yet released
	// fleet is the cluster's view during one Observe (nil: none; see
	// Outcome.Fleet).
	fleet     *Fleet
	successes int // consecutive, towards the next additive increase

	counts      [60]minuteCount
	lastReply   string
	lastChange  time.Time
	lastAttempt time.Time
	lastThrottl time.Time

	version   uint64        // bumped on every persisted change
	marshaled uint64        // version last handed to the store
	written   atomic.Uint64 // version last written to the store (under Policy.saveMu)
	disk      *record       // what a reload would read (rest image, see restImage); nil = nothing stored
	uses      uint64        // every get; eviction checks nobody used d while its state was being saved
}

type minuteCount struct {
	minute int64
	c      map[Class]int
}

func (p *Policy) newDest(name string) *dest {
	d := &dest{name: name}
	d.cfgConc, d.cfgRate = p.configLimits(name)
	d.conc.level = p.startConc(d)
	d.slow.on = d.conc.level < d.maxConc()
	d.rate.set(d.maxRate(), p.o.Now())
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
	rec, err := decodeRecord(b)
	if err != nil {
		p.log.Warn("policy: ignoring unreadable destination state", "dest", name, "err", err)
		return nil, false
	}
	p.registerMembers(name, rec.Members)
	d := p.newDest(name)
	d.restore(rec, p)
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

// sessions is the sessions open at the destination: this node's, or the
// whole fleet's in cluster mode (a refusal of one session too many is
// about all of them).
func (d *dest) sessions() int {
	if d.fleet != nil && d.fleet.Sessions > d.active {
		return d.fleet.Sessions
	}
	return d.active
}

// pace is the delivered pace the receiver saw, over the last second and
// the last 10 s: this node's, or the fleet's when the cluster knows it;
// share is this node's part of the fleet's pace over the last 10 s (0 =
// alone or unknown), by which the spacing of refusals, counted in this
// node's successes, is scaled (a node sending a third of the fleet's mail
// sees a third of the successes between two refusals).
func (d *dest) pace(now time.Time) (recent, long rate.Limit, share float64) {
	recent, long = d.rate.oks.rate(now), d.rate.oks.longRate(now)
	if f := d.fleet; f != nil {
		if long > 0 && f.LongPace > long {
			share = max(float64(long/f.LongPace), 0.05)
		}
		recent, long = max(recent, f.Pace), max(long, f.LongPace)
	}
	return recent, long, share
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

// stateAt is the state as seen at now: a pause or suspension that has
// ended is half-open (probing) until a reply reopens the destination.
func (d *dest) stateAt(now time.Time) string {
	switch {
	case d.susp.in(now):
		return StateSuspended
	case d.pause.in(now):
		return StatePaused
	case d.pause.halfOpen:
		return StateProbing
	}
	return StateOpen
}

// blocked reports whether a pause or suspension is in force at now:
// refusals from sessions that were already running when it began are the
// same signal and must not step the backoff or cut again.
func (d *dest) blocked(now time.Time) bool { return d.pause.in(now) || d.susp.in(now) }

// blockedUntil is the end of the pause or suspension, whichever is later.
func (d *dest) blockedUntil() time.Time {
	if d.susp.until.After(d.pause.until) {
		return d.susp.until
	}
	return d.pause.until
}
