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
	c.cut(6, false, t0, o) // 6 sessions in flight
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
	c.cut(6, true, t0.Add(5*time.Second), o)
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
	// No cap, no delivered pace: nothing to cut from.
	if _, ok := c.refused(0, 0, false, t0, o); ok {
		t.Fatal("cut with nothing known")
	}
	// No cap: the first cut halves the delivered pace and remembers
	// twice that pace as the level where the cap is lifted.
	next, ok := c.refused(0, 20, false, t0, o)
	if !ok || next != 10 || c.top != 40 || c.refusedAt != 20 || !c.lastCut.Equal(t0) {
		t.Fatalf("first cut: %v %v %+v", next, ok, c)
	}
	if c.due(t0.Add(time.Second), 2*time.Second) || !c.due(t0.Add(2*time.Second), 2*time.Second) {
		t.Error("one cut per window")
	}
	// Below 0.9 × the refusal, +10% per step.
	now := t0.Add(3 * time.Second)
	if r := c.grow(10, 0, now, o); r != 11 {
		t.Errorf("step from 10: %v, want 11", r)
	}
	// Near it (18 ≥ 0.9 × 20): one step, then wait for the probe time.
	if r := c.grow(18, 0, now, o); r != 19.8 {
		t.Errorf("near step from 18: %v, want 19.8", r)
	}
	if r := c.grow(19.8, 0, now, o); r != 19.8 {
		t.Errorf("second near step before the probe time: %v", r)
	}
	// At the probe time one step crosses the old limit (the crossing
	// hold is over).
	now = c.probeAt
	if r := c.grow(19.8, 0, now, o); r != 21.78 {
		t.Errorf("crossing step: %v, want 21.78", r)
	}
	// Above it, before the confirmation: linear steps of MinRate.
	if r := c.grow(21.78, 0, now, o); r != 21.78 {
		t.Errorf("step before the confirmation: %v", r)
	}
	// A whole confirmation above the old limit without a refusal: the
	// limit is forgotten, the climb multiplicative again.
	now = c.probeAt
	if r := c.grow(21.78, 0, now, o); c.refusedAt != 0 || r < 23.9 {
		t.Errorf("after confirmation: %v (refusedAt %v)", r, c.refusedAt)
	}
	// Up to top, then the cap is lifted only retry_max after the cut.
	if r := c.grow(39, 0, t0.Add(5*time.Second), o); r != 40 {
		t.Errorf("to top: %v", r)
	}
	if r := c.grow(40, 0, t0.Add(o.RetryMax), o); r != 0 {
		t.Errorf("at top retry_max after the cut: %v, want 0 (unlimited)", r)
	}
	// A configured cap bounds every step.
	if r := c.grow(48, 50, t0.Add(time.Hour), o); r != 50 {
		t.Errorf("below a cap of 50: %v", r)
	}
	// A cut from a cap that grew above the delivered pace starts from
	// the pace; a hard one goes to the floor.
	if r, _ := c.refused(50, 30, false, t0.Add(2*time.Hour), o); r != 15 {
		t.Errorf("cut from a pace of 30 under a cap of 50: %v", r)
	}
	if r, _ := c.refused(50, 30, true, t0.Add(3*time.Hour), o); r != o.MinRate {
		t.Errorf("hard cut: %v", r)
	}
	c.freeze(t0.Add(5 * time.Hour))
	if r := c.grow(5, 50, t0.Add(4*time.Hour), o); r != 5 {
		t.Errorf("grew while frozen: %v", r)
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
	if r := a.oks.rate(now); r < 19 || r > 21 {
		t.Fatalf("delivered pace %v, want about 20", r)
	}
	if _, _, limited := a.tokens(now); limited || a.reserve(now, time.Second) != 0 {
		t.Fatal("unlimited rate has a bucket")
	}
	if !a.cut(false, now, o) || a.rate < 9 || a.rate > 11 {
		t.Fatalf("cut: %v", a.rate)
	}
	n, _, limited := a.tokens(now)
	if !limited || n != 1 || a.reserve(now, time.Second) != 0 {
		t.Fatalf("bucket after the cut: %d tokens", n)
	}
	if _, next, _ := a.tokens(now); next.Sub(now) <= 0 || next.Sub(now) > 150*time.Millisecond {
		t.Errorf("next token in %v, want about 100ms", next.Sub(now))
	}
	if w := a.reserve(now, time.Second); w <= 0 {
		t.Errorf("second reserve: %v", w)
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

// TestRecordVersions: a version 1 record (flat, no "v") reads as before;
// a version 2 record keeps every learned value, and an unknown version is
// refused.
func TestRecordVersions(t *testing.T) {
	t.Parallel()
	v1 := `{"state":"suspended","paused_until":"2026-01-01T02:00:00Z","step":2,"concurrency":4,"ceil":8,"rate_ceil":20,"rate":10,` +
		`"rate_top":40,"msgs_per_conn":3,"grey_lo":5000000000,"grey_hi":9000000000,"hold_until":"2026-01-01T01:00:00Z","rate_refused":20,"members":["a.example"]}`
	r, err := decodeRecord([]byte(v1))
	if err != nil {
		t.Fatal(err)
	}
	if r.V != recordVersion || r.Slow || r.Conc.Level != 4 || r.Conc.Ceil.Level != 8 || r.Rate.Rate != 10 || r.Rate.Ceil.Level != 20 ||
		r.Rate.Top != 40 || r.Rate.RefusedAt != 20 || r.Pause.Step != 2 || !r.Pause.HalfOpen || !r.Suspend.Equal(t0.Add(2*time.Hour)) ||
		r.MsgsPerConn != 3 || r.Grey != (greyRecord{5 * time.Second, 9 * time.Second}) || !r.Conc.Frozen.Equal(t0.Add(time.Hour)) ||
		!r.Rate.Frozen.Equal(t0.Add(time.Hour)) || len(r.Members) != 1 {
		t.Errorf("v1 upgraded to %+v", r)
	}
	if r, _ := decodeRecord([]byte(`{"state":"open","concurrency":1}`)); !r.Slow {
		t.Error("a v1 destination that never refused is not in slow start")
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
