package policy

import (
	"testing"
	"time"
)

// The tests of this file drive one mechanism of a destination each, on
// its own type, without a Policy.

func mechOptions() *Options {
	o := testOptions(func(o *Options) {
		o.ThrottlePause, o.RetryMax, o.MinRate, o.MinConcurrency = time.Second, 10*time.Second, 1, 1
	})
	return &o
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestSlowStartType(t *testing.T) {
	t.Parallel()
	s := slowStart{on: true}
	got := []int{}
	c := 1
	for range 6 {
		c = s.grow(c, 4)
		got = append(got, c)
	}
	if want := []int{2, 3, 4, 4, 4, 4}; !equalInts(got, want) || s.on {
		t.Errorf("slow start from 1 to 4: %v (on %v), want %v and off", got, s.on, want)
	}
	s = slowStart{on: true}
	s.end()
	if c := s.grow(1, 4); c != 1 {
		t.Errorf("after end: grew to %d", c)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestConcAIMDType(t *testing.T) {
	t.Parallel()
	o := mechOptions()
	c := concAIMD{level: 8}
	if !c.due(t0, o.DecreaseWindow) {
		t.Fatal("first cut not due")
	}
	c.cut(6, false, false, false, t0, o) // 6 sessions in flight
	if c.level != 3 || c.ceil.level != 6 || c.due(t0.Add(o.DecreaseWindow/2), o.DecreaseWindow) {
		t.Fatalf("after a cut from 6: %+v", c)
	}
	// Growth needs the limit to have held sessions back.
	if c.grow(8, t0) {
		t.Fatal("grew without being limited")
	}
	c.limited = true
	if !c.grow(8, t0) || c.level != 4 {
		t.Fatalf("additive step: %+v", c)
	}
	c.level, c.limited = 5, true
	// 6 is the ceiling: crossing waits for its hold (2 × ThrottlePause).
	if c.grow(8, t0.Add(time.Second)) {
		t.Fatalf("crossed the ceiling during its hold: %+v", c)
	}
	if !c.grow(8, t0.Add(2*time.Second)) || c.level != 6 || c.ceil.level != 0 {
		t.Fatalf("after the hold: %+v", c)
	}
	c.cut(6, false, true, false, t0.Add(5*time.Second), o)
	if c.level != o.MinConcurrency {
		t.Fatalf("hard cut: %d", c.level)
	}
	c.freeze(t0.Add(time.Hour))
	c.limited = true
	if c.grow(8, t0.Add(30*time.Minute)) {
		t.Fatal("grew while frozen")
	}
	if !c.grow(8, t0.Add(time.Hour)) {
		t.Fatal("no growth after the freeze")
	}
	c.level = 9
	if !c.grow(8, t0.Add(2*time.Hour)) || c.level != 8 {
		t.Fatalf("above the maximum: %+v", c)
	}
}

func TestRateCeilingType(t *testing.T) {
	t.Parallel()
	o := mechOptions()
	var c rateCeiling
	// No cap and nothing delivered: nothing to learn from, unless there
	// is nothing else to cut.
	if _, ok := c.refused(0, 0, 0, 0, time.Time{}, false, false, t0, o); ok {
		t.Fatal("cut with nothing known")
	}
	// The first refusal: the pace delivered just before is the
	// receiver's rate, learned at once with a 5 % margin.
	next, ok := c.refused(0, 100, 100, 100, time.Time{}, false, false, t0, o)
	if !ok || next != 95 || c.limit != 95 || !c.probeAt.Equal(t0.Add(probeGapFirst)) || c.gain != probeGain {
		t.Fatalf("first refusal: %v %v %+v", next, ok, c)
	}
	if c.due(t0.Add(time.Second), 2*time.Second) || !c.due(t0.Add(2*time.Second), 2*time.Second) {
		t.Error("one cut per window")
	}
	// No probe before its time, nor while the rate holds nothing back.
	if r := c.grow(95, 0, true, 0, t0.Add(time.Second)); r != 95 {
		t.Errorf("before the probe time: %v", r)
	}
	now := c.probeAt
	if r := c.grow(95, 0, false, 0, now); r != 95 || c.probe != 0 {
		t.Errorf("not binding: %v (probe %v)", r, c.probe)
	}
	// A probe: +50 %, held until it is confirmed.
	if r := c.grow(95, 0, true, 290, now); r != 142.5 {
		t.Fatalf("probe: %v", r)
	}
	if r := c.grow(142.5, 0, true, 0, now.Add(time.Second)); r != 142.5 || c.limit != 95 {
		t.Errorf("during the probe: %v, limit %v", r, c.limit)
	}
	// Refused: the learned rate stands, the next probe goes half as
	// far and waits.
	now = now.Add(time.Second)
	if r, _ := c.refused(142.5, 120, 120, 300, time.Time{}, false, false, now, o); r != 95 || c.limit != 95 || c.gain != probeGain/2 || !c.probeAt.After(now) {
		t.Fatalf("failed probe: %v %+v", r, c)
	}
	// The next probe, confirmed: the limit is raised, and the next
	// probe goes at once, twice as far.
	now = c.probeAt
	if r := c.grow(95, 0, true, 990, now); r != 118.75 {
		t.Fatalf("second probe: %v", r)
	}
	now = now.Add(probeConfirm)
	if r := c.grow(118.75, 0, true, 0, now); c.limit != 118.75 || r != 118.75*1.5 {
		t.Fatalf("confirmed: %v %+v", r, c)
	}
	// A drop: refused at the learned rate with no refusal just before:
	// halved, and the first probe soon and far.
	c.probe = 0
	now = now.Add(time.Minute)
	if r, _ := c.refused(118.75, 118, 118, 1000, time.Time{}, false, false, now, o); r != 118.75/2 || c.gain != probeGainMax || !c.probeAt.Equal(now.Add(probeGapMin)) {
		t.Fatalf("drop: %v %+v", r, c)
	}
	// A refusal soon after: what went through between the two, once
	// sending resumed after the quiet, is the receiver's rate (20 in
	// 1 s).
	now = now.Add(rateQuiet + time.Second)
	if r, _ := c.refused(c.limit, 40, 40, 1020, time.Time{}, false, false, now, o); r != 19 {
		t.Fatalf("spacing: %v, want 19", r)
	}
	// A configured cap bounds every step; a hard refusal goes to the
	// floor; a rule's hold freezes growth.
	if r := c.grow(19, 10, true, 0, now.Add(time.Hour)); r != 10 {
		t.Errorf("under a cap of 10: %v", r)
	}
	if r, _ := c.refused(19, 19, 19, 2000, time.Time{}, true, false, now.Add(2*time.Hour), o); r != o.MinRate {
		t.Errorf("hard: %v", r)
	}
	c.freeze(now.Add(5 * time.Hour))
	if r := c.grow(1, 0, true, 0, now.Add(4*time.Hour)); r != 1 {
		t.Errorf("grew while frozen: %v", r)
	}
	// Nothing delivered and concurrency at its floor: the floor rate.
	var f rateCeiling
	if r, ok := f.refused(0, 0, 0, 0, time.Time{}, false, true, t0, o); !ok || r != o.MinRate {
		t.Errorf("at the floor: %v %v", r, ok)
	}
	// A slow probe runs for probeMessages messages.
	if d := confirmFor(2); d != 5*time.Second {
		t.Errorf("confirmation at 2/s: %v", d)
	}
}

func TestRateAIMDType(t *testing.T) {
	t.Parallel()
	o := mechOptions()
	var a rateAIMD
	now := t0
	for range 40 { // 20/s for 2 s
		a.oks.add(now)
		now = now.Add(50 * time.Millisecond)
	}
	if r := a.oks.rate(now); r != 20 {
		t.Fatalf("delivered pace %v, want 20", r)
	}
	if _, _, limited := a.tokens(now); limited || a.reserve(now, time.Second) != 0 {
		t.Fatal("unlimited rate has a bucket")
	}
	quiet := now.Add(time.Second)
	if !a.cut(false, false, a.oks.rate(now), a.oks.longRate(now), 0, quiet, now, o) || a.rate != 19 {
		t.Fatalf("cut: %v", a.rate)
	}
	// No message before quiet: the receiver's window is full.
	if n, next, _ := a.tokens(now); n != 0 || !next.Equal(quiet) {
		t.Fatalf("during the quiet: %d tokens, next %v", n, next)
	}
	if w := a.reserve(now, time.Second); w != time.Second {
		t.Fatalf("reserve during the quiet: %v", w)
	}
	now = quiet
	n, _, limited := a.tokens(now)
	if !limited || n != 1 || a.reserve(now, time.Second) != 0 {
		t.Fatalf("bucket after the quiet: %d tokens", n)
	}
	if _, next, _ := a.tokens(now); next.Sub(now) <= 0 || next.Sub(now) > 60*time.Millisecond {
		t.Errorf("next token in %v, want about 53ms", next.Sub(now))
	}
	if w := a.reserve(now, time.Second); w <= 0 || now.Sub(a.waited) != 0 {
		t.Errorf("second reserve: %v, waited %v", w, a.waited)
	}
	a.clamp(5, now)
	if a.rate != 5 {
		t.Errorf("clamp to 5: %v", a.rate)
	}
}

func TestPauseProbeType(t *testing.T) {
	t.Parallel()
	var p pauseProbe
	p.block(t0.Add(time.Second))
	if !p.in(t0) || p.in(t0.Add(time.Second)) || !p.halfOpen {
		t.Fatalf("pause: %+v", p)
	}
	// Two sessions from before the probe are still open.
	if !p.admitProbe(2) || p.admitProbe(2) {
		t.Fatal("exactly one probe")
	}
	p.release()
	p.release() // the old sessions end first
	if p.admitProbe(0) {
		t.Fatal("an old session's release freed a second probe")
	}
	p.release() // the probe ends without a reply
	if !p.admitProbe(0) {
		t.Fatal("no new probe after the first one ended")
	}
	p.step = 3
	if !p.reopen() || p.halfOpen || p.step != 0 || p.reopen() {
		t.Fatalf("reopen: %+v", p)
	}
	p.release() // a release after reopening counts nothing
	if p.probing {
		t.Fatal("probing after reopen")
	}
}

func TestSuspensionType(t *testing.T) {
	t.Parallel()
	d := &dest{}
	d.susp.until = t0.Add(time.Hour)
	d.pause.close()
	d.pause.until = t0.Add(time.Minute)
	for _, tc := range []struct {
		at    time.Duration
		state string
	}{{0, StateSuspended}, {30 * time.Minute, StateSuspended}, {time.Hour, StateProbing}} {
		if got := d.stateAt(t0.Add(tc.at)); got != tc.state {
			t.Errorf("at %v: %s, want %s", tc.at, got, tc.state)
		}
	}
	if !d.blockedUntil().Equal(d.susp.until) {
		t.Errorf("blocked until %v, want the suspension's end", d.blockedUntil())
	}
}

func TestGreyBracketType(t *testing.T) {
	t.Parallel()
	var g greyBracket
	steps := []struct {
		refused bool
		after   time.Duration
		changed bool
		lo, hi  time.Duration
	}{
		{true, 6 * time.Second, true, 6 * time.Second, 0},
		{true, 5 * time.Second, false, 6 * time.Second, 0}, // lo only grows
		{false, 12 * time.Second, true, 6 * time.Second, 12 * time.Second},
		{false, 13 * time.Second, false, 6 * time.Second, 12 * time.Second}, // hi only shrinks
		{false, 11 * time.Second, true, 6 * time.Second, 11 * time.Second},
		{false, 4 * time.Second, false, 6 * time.Second, 11 * time.Second}, // below lo: noise
		{true, 11 * time.Second, true, 11 * time.Second, 0},                // refused at hi: the window grew
	}
	for i, s := range steps {
		var ch bool
		if s.refused {
			ch = g.refusedAfter(s.after)
		} else {
			ch = g.acceptedAfter(s.after)
		}
		if ch != s.changed || g.lo != s.lo || g.hi != s.hi {
			t.Fatalf("step %d: changed %v, bracket %+v; want %v [%v, %v]", i, ch, g, s.changed, s.lo, s.hi)
		}
	}
	if g.window() != 0 {
		t.Errorf("window %v with hi unknown", g.window())
	}
}

func TestPerConnectionType(t *testing.T) {
	t.Parallel()
	c := perConnection{admits: 2, oks: 21}
	var got []int
	for range 6 {
		c.lower()
		got = append(got, c.limit)
	}
	if want := []int{10, 5, 2, 1, 1, 1}; !equalInts(got, want) {
		t.Errorf("limits %v, want %v", got, want)
	}
	if c.lower() {
		t.Error("a change reported at the floor")
	}
	if c := (perConnection{}); !c.lower() || c.limit != 1 {
		t.Errorf("with no sessions counted: %d", c.limit)
	}
}

// TestRecordVersions: a version 1 record (flat, no "v") and a version 2
// one (the first law's rate gates) read as before, a rate learned from
// refusals as the learned rate; an unknown version is refused.
func TestRecordVersions(t *testing.T) {
	t.Parallel()
	v1 := `{"state":"suspended","paused_until":"2026-01-01T02:00:00Z","step":2,"concurrency":4,"ceil":8,"rate_ceil":20,"rate":10,` +
		`"rate_top":40,"msgs_per_conn":3,"grey_lo":5000000000,"grey_hi":9000000000,"hold_until":"2026-01-01T01:00:00Z","rate_refused":20,"members":["a.example"]}`
	r, err := decodeRecord([]byte(v1))
	if err != nil {
		t.Fatal(err)
	}
	if r.V != recordVersion || r.Slow || r.Conc.Level != 4 || r.Conc.Ceil.Level != 8 || r.Rate.Rate != 10 || r.Rate.Limit != 10 ||
		r.Pause.Step != 2 || !r.Pause.HalfOpen || !r.Suspend.Equal(t0.Add(2*time.Hour)) ||
		r.MsgsPerConn != 3 || r.Grey != (greyRecord{5 * time.Second, 9 * time.Second}) || !r.Conc.Frozen.Equal(t0.Add(time.Hour)) ||
		!r.Rate.Frozen.Equal(t0.Add(time.Hour)) || len(r.Members) != 1 {
		t.Errorf("v1 upgraded to %+v", r)
	}
	if r, _ := decodeRecord([]byte(`{"state":"open","concurrency":1}`)); !r.Slow {
		t.Error("a v1 destination that never refused is not in slow start")
	}
	v2 := `{"v":2,"slow":false,"conc":{"level":3,"ceil":{"level":4,"hold":2000000000}},"rate":{"rate":19,"ceil":{"level":38},"refused_at":38,"top":76},"pause":{"step":1}}`
	if r, err := decodeRecord([]byte(v2)); err != nil || r.V != recordVersion || r.Conc.Level != 3 || r.Conc.Ceil.Hold != 2*time.Second ||
		r.Rate.Rate != 19 || r.Rate.Limit != 19 || r.Pause.Step != 1 {
		t.Errorf("v2 upgraded to %+v (%v)", r, err)
	}
	if _, err := decodeRecord([]byte(`{"v":99}`)); err == nil {
		t.Error("unknown version accepted")
	}
}

// TestRestartKeepsRateLearning: the time of the last rate cut, the rate
// of the last refusal and the ceiling's hold survive a restart (issue 11
// item 4: version 1 lost the first two, so a restart lifted a learned cap
// at once and climbed multiplicatively through the old limit).
func TestRestartKeepsRateLearning(t *testing.T) {
	t.Parallel()
	store := &memStore{}
	c := newClock()
	o := testOptions(func(o *Options) {
		o.Now, o.Store, o.InitialConcurrency = c.Now, store, 0
		o.RetryBase, o.RetryMax, o.ThrottlePause, o.DecreaseWindow = time.Second, time.Hour, time.Second, time.Second
		o.MinRate, o.IncreaseAfter = 1, 1
	})
	p := mustNew(t, o)
	const d = "dest.test"
	admitN(p, d, 2)
	for range 40 { // 20/s
		p.Observe(d, Outcome{Reply: accepted})
		c.Advance(50 * time.Millisecond)
	}
	p.Observe(d, Outcome{Reply: rateLimited})
	p.mu.Lock()
	before := p.image(p.get(d))
	p.mu.Unlock()
	q := mustNew(t, o)
	q.mu.Lock()
	dd := q.get(d)
	after := q.image(dd)
	q.mu.Unlock()
	if !sameImage(before, after) {
		t.Fatalf("restart changed the state:\nbefore %+v\nafter  %+v", before, after)
	}
	// The climb back: linear near the old limit, and the cap stays, as
	// it would have without the restart.
	c.Set(mustState(t, q, d).PausedUntil)
	q.Admit(d)
	for range 200 {
		q.Observe(d, Outcome{Reply: accepted})
		c.Advance(100 * time.Millisecond)
	}
	if s := mustState(t, q, d); s.Rate == 0 || s.Rate > 40 {
		t.Errorf("after a restart the learned cap went to %v (0 = lifted), want at most top 40", s.Rate)
	}
}

// TestRestartKeepsWhatTheRateLawLearned (issue 11 item 4): the whole of
// the rate ceiling's learning survives a restart: the last confirmed
// probe, the recovery after a drop, the last rate refusal (the spacing
// of the next counts from it) and a receiver found to punish refusals.
func TestRestartKeepsWhatTheRateLawLearned(t *testing.T) {
	t.Parallel()
	store := &memStore{}
	c := newClock()
	o := testOptions(func(o *Options) { o.Now, o.Store = c.Now, store })
	p := mustNew(t, o)
	const d = "dest.test"
	p.mu.Lock()
	dd := p.get(d)
	want := rateCeiling{limit: 42, probeAt: c.Now().Add(time.Minute), gap: 15 * time.Second, gain: probeGainMax,
		lastCut: c.Now().Add(-time.Second), confirmedAt: c.Now().Add(-10 * time.Second), recovering: true, dropAt: c.Now().Add(-20 * time.Second),
		limitAt:   c.Now().Add(-30 * time.Second),
		refusedAt: c.Now().Add(-time.Second), wary: true}
	dd.rate.ceil = want
	dd.rate.set(42, c.Now())
	dd.version++
	s := p.snapshotForSave(dd)
	p.mu.Unlock()
	p.save(s)
	q := mustNew(t, o)
	q.mu.Lock()
	got := q.get(d).rate.ceil
	q.mu.Unlock()
	eq := func(a, b time.Time) bool { return a.Equal(b) }
	if got.limit != want.limit || !eq(got.probeAt, want.probeAt) || got.gap != want.gap || got.gain != want.gain ||
		!eq(got.lastCut, want.lastCut) || !eq(got.confirmedAt, want.confirmedAt) || got.recovering != want.recovering ||
		!eq(got.refusedAt, want.refusedAt) || got.wary != want.wary || !eq(got.dropAt, want.dropAt) ||
		!eq(got.limitAt, want.limitAt) || got.before != want.before ||
		got.prevLimit != want.prevLimit || !eq(got.raisedAt, want.raisedAt) {
		t.Errorf("after a restart the rate ceiling is\n%+v\nwant\n%+v", got, want)
	}
}

// In cluster mode the spacing of refusals, counted in this node's
// successes, is the fleet's: a node sending a third of the fleet's mail
// scales it by three (issue 15).
func TestSpacingFleetWide(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := rateCeiling{refusedAt: t0, oksAt: 0}
	alone := c.spacing(30, t0, t0.Add(3*time.Second+rateQuiet))
	c.share = 1.0 / 3
	fleet := c.spacing(30, t0, t0.Add(3*time.Second+rateQuiet))
	if alone != 7.5 || fleet < 22.49 || fleet > 22.51 {
		t.Fatalf("spacing alone %v, with a third of the fleet's traffic %v; want 30 in 4 s = 7.5, and three times that", alone, fleet)
	}
}

// TestRateCeilingReturnsToTheLevelBeforeADrop (issue 11 item 3): a drop
// corrected by a second refusal soon after (the halving was not enough)
// still returns to the rate before the drop, not to the halved one, and
// a confirmed return ends the recovery there: no step of ×4 beyond a
// level the receiver just showed it holds (bench/throttle's drop climbed
// 19 → 47.5 → 190, was refused, and settled at 71/s of 100).
func TestRateCeilingReturnsToTheLevelBeforeADrop(t *testing.T) {
	t.Parallel()
	o := mechOptions()
	var c rateCeiling
	c.refused(0, 100, 100, 100, time.Time{}, false, false, t0, o)
	// A drop a minute later: halved, recovering towards 95.
	now := t0.Add(time.Minute)
	if r, _ := c.refused(95, 86, 94, 5000, time.Time{}, false, false, now, o); r != 47.5 || !c.recovering || c.before != 95 {
		t.Fatalf("drop: %v %+v", r, c)
	}
	// 20 let through in the second after the quiet: the receiver's rate
	// is a fifth of what it was, a further drop. The level to return to
	// stays 95.
	now = now.Add(rateQuiet + time.Second)
	if r, _ := c.refused(47.5, 20, 80, 5020, time.Time{}, false, false, now, o); r != 19 || !c.recovering || c.before != 95 {
		t.Fatalf("second refusal: %v %+v", r, c)
	}
	now = c.probeAt
	if r := c.grow(19, 0, true, 5100, now); r != 95 {
		t.Fatalf("recovery probe: %v, want the level before the drop, 95", r)
	}
	// Confirmed: back at 95, and the recovery is over. The next probe
	// waits, and goes +50 %.
	now = now.Add(probeConfirm)
	if r := c.grow(95, 0, true, 5300, now); r != 95 || c.limit != 95 || c.recovering || c.gain != probeGain {
		t.Fatalf("confirmed: %v %+v", r, c)
	}
	if r := c.grow(95, 0, true, 5400, now.Add(probeGapFirst-time.Second)); r != 95 {
		t.Errorf("a probe %v after the return: %v", probeGapFirst-time.Second, r)
	}
	if r := c.grow(95, 0, true, 5500, now.Add(probeGapFirst)); r != 95*1.5 {
		t.Errorf("the next probe: %v, want %v", r, 95*1.5)
	}
}
