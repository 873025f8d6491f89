package timeline

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"sluice/internal/fakeclock"
)

// t0 is on a step boundary, as fakeclock.Start is not.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func newAt(max int, t time.Time) (*Recorder, *fakeclock.Clock) {
	clk := fakeclock.New()
	clk.Set(t)
	return New(max, clk.Now), clk
}

// only returns the series of dest in c.
func only(t *testing.T, c Chart, dest string) Series {
	t.Helper()
	for _, s := range c.Destinations {
		if s.Destination == dest {
			return s
		}
	}
	t.Fatalf("%s not charted: %+v", dest, c.Destinations)
	return Series{}
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// TestResolution: a step is 10 s, aligned on the epoch; the newest step
// is the last of Points, and the chart's start is Points-1 steps before
// it.
func TestResolution(t *testing.T) {
	t.Parallel()
	r, clk := newAt(5, t0.Add(3*time.Second))
	r.Observe("d", Sent, true)
	clk.Set(t0.Add(9*time.Second + 999*time.Millisecond))
	r.Observe("d", Reply421, true) // same step as the first
	clk.Set(t0.Add(10 * time.Second))
	r.Observe("d", Refused, false) // the next step
	clk.Set(t0.Add(12*time.Second + 345678*time.Microsecond))
	c := r.Chart(5, "")
	if c.StepSeconds != 10 || c.Points != Points {
		t.Fatalf("step %d s, %d points", c.StepSeconds, c.Points)
	}
	// The newest step has run 2.345 s: the page divides its counts by that.
	if want := t0.Add(12345 * time.Millisecond); !c.Now.Equal(want) || c.Now.Location() != time.UTC {
		t.Errorf("now %v, want %v in UTC", c.Now, want)
	}
	if want := t0.Add(10*time.Second).Unix() - (Points-1)*10; c.Start != want {
		t.Errorf("start %d, want %d", c.Start, want)
	}
	s := only(t, c, "d")
	last, prev := Points-1, Points-2
	if s.Sent[prev] != 1 || s.Replies421[prev] != 1 || s.Messages[prev] != 2 {
		t.Errorf("step of t0: sent %d, 421 %d, messages %d; want 1, 1, 2", s.Sent[prev], s.Replies421[prev], s.Messages[prev])
	}
	if s.Refused[last] != 1 || s.Messages[last] != 0 {
		t.Errorf("step of t0+10s: refused %d, messages %d; want 1, 0", s.Refused[last], s.Messages[last])
	}
	if sum(s.Sent)+sum(s.Replies421)+sum(s.Refused) != 3 {
		t.Errorf("counted elsewhere: %+v", s)
	}
	if len(s.State) != Points || s.State[last] != '.' || s.Concurrency[last] != -1 {
		t.Errorf("a step without a reading must read as such: state %q, concurrency %d", s.State[last], s.Concurrency[last])
	}
}

// TestWrapAround: the ring holds exactly one hour; a step comes round
// after Points steps and reads as new, and a step older than the hour is
// never shown.
func TestWrapAround(t *testing.T) {
	t.Parallel()
	r, clk := newAt(5, t0)
	r.Record(Sample{Name: "d", Active: 1, Concurrency: 3, MaxConcurrency: 10})
	r.Observe("d", Sent, true)
	// 359 steps later the first step is still the oldest shown.
	clk.Set(t0.Add((Points - 1) * Step))
	s := only(t, r.Chart(5, ""), "d")
	if s.Sent[0] != 1 || s.Concurrency[0] != 3 || s.State[0] != 'o' {
		t.Fatalf("oldest step: sent %d, concurrency %d, state %q", s.Sent[0], s.Concurrency[0], s.State[0])
	}
	// One more step and it is gone, though its array slot was not
	// written again.
	clk.Set(t0.Add(Points * Step))
	s = only(t, r.Chart(5, ""), "d")
	if sum(s.Sent) != 0 || s.Concurrency[0] != -1 {
		t.Fatalf("a step an hour old is still shown: sent %v", sum(s.Sent))
	}
	// Writing into the same array slot clears what was there.
	r.Observe("d", Reply421, true)
	s = only(t, r.Chart(5, ""), "d")
	if sum(s.Sent) != 0 || sum(s.Replies421) != 1 || s.Replies421[Points-1] != 1 {
		t.Fatalf("after the wrap: sent %d, 421 %d", sum(s.Sent), sum(s.Replies421))
	}
	// Three hours of steps, one attempt each: the chart holds the last
	// hour only.
	for i := range 3 * Points {
		clk.Set(t0.Add(time.Duration(Points+1+i) * Step))
		r.Observe("d", Sent, true)
	}
	s = only(t, r.Chart(5, ""), "d")
	if sum(s.Sent) != Points || sum(s.Replies421) != 0 {
		t.Fatalf("after three hours: %d sent shown, want %d", sum(s.Sent), Points)
	}
}

// TestLimitsAndState: the limits are the latest reading of the step,
// sessions in use and the state the highest; rates keep three decimals.
func TestLimitsAndState(t *testing.T) {
	t.Parallel()
	r, clk := newAt(5, t0)
	r.Record(Sample{Name: "d", Active: 4, Concurrency: 8, MaxConcurrency: 20, Rate: 0.1, MaxRate: 2})
	clk.Advance(2 * time.Second)
	r.Record(Sample{Name: "d", State: Paused, PausedUntil: clk.Now().Add(time.Minute), Active: 0, Concurrency: 4, MaxConcurrency: 20, Rate: 0.05, MaxRate: 2})
	clk.Advance(2 * time.Second)
	r.Record(Sample{Name: "d", State: Probing, Active: 1, Concurrency: 4, MaxConcurrency: 20})
	s := only(t, r.Chart(5, ""), "d")
	i := Points - 1
	if s.Concurrency[i] != 4 || s.MaxConcurrency[i] != 20 || s.Active[i] != 4 || s.State[i] != 'p' {
		t.Errorf("step: concurrency %d/%d, active %d, state %q; want 4/20, 4, p", s.Concurrency[i], s.MaxConcurrency[i], s.Active[i], s.State[i])
	}
	if s.Rate[i] != 0 || s.MaxRate[i] != 0 {
		t.Errorf("rate %v/%v, want the latest reading (unlimited: 0)", s.Rate[i], s.MaxRate[i])
	}
	clk.Advance(Step)
	r.Record(Sample{Name: "d", Active: 1, Concurrency: 5, MaxConcurrency: 20, Rate: 0.1})
	s = only(t, r.Chart(5, ""), "d")
	if s.Rate[Points-1] != 0.1 || s.State[Points-1] != 'o' {
		t.Errorf("rate %v (want 0.1), state %q", s.Rate[Points-1], s.State[Points-1])
	}
}

// TestPauses: a pause seen at a reading opens a band until the time the
// policy gave; later readings of the same pause extend it; a reading
// that finds it over early (an operator's resume) cuts it; a band an
// hour old is no longer shown.
func TestPauses(t *testing.T) {
	t.Parallel()
	r, clk := newAt(5, t0)
	p := func(st State, until time.Duration) Sample {
		return Sample{Name: "d", State: st, PausedUntil: clk.Now().Add(until), Concurrency: 1, MaxConcurrency: 10}
	}
	r.Record(p(Paused, 30*time.Second))
	clk.Advance(5 * time.Second)
	r.Record(p(Paused, 60*time.Second)) // the pause was made longer: t0+65s
	clk.Advance(20 * time.Second)
	r.Record(p(Open, 0)) // resumed at t0+25s
	clk.Advance(time.Minute)
	r.Record(p(Suspended, 10*time.Minute)) // t0+85s .. t0+685s
	got := only(t, r.Chart(5, ""), "d").Pauses
	want := []Pause{
		{From: t0, Until: t0.Add(25 * time.Second), State: "paused"},
		{From: t0.Add(85 * time.Second), Until: t0.Add(685 * time.Second), State: "suspended"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pauses\n got %v\nwant %v", got, want)
	}
	clk.Set(t0.Add(25*time.Second + time.Hour + Step))
	got = only(t, r.Chart(5, ""), "d").Pauses
	if len(got) != 1 || got[0].State != "suspended" {
		t.Fatalf("after an hour: %v", got)
	}
	// The bands are a ring: the latest maxBands are kept.
	for range 3 * maxBands {
		clk.Advance(10 * time.Second)
		r.Record(p(Paused, time.Second))
	}
	if got := only(t, r.Chart(5, ""), "d").Pauses; len(got) != maxBands {
		t.Fatalf("%d pauses kept, want %d", len(got), maxBands)
	}
}

// TestEviction: the number of destinations is bounded (the least
// recently used gives way), and a destination the policy dropped from
// memory is released at the next reading, unless it was used after the
// reading was taken.
func TestEviction(t *testing.T) {
	t.Parallel()
	r, clk := newAt(3, t0)
	for i, d := range []string{"a", "b", "c"} {
		clk.Set(t0.Add(time.Duration(i) * time.Second))
		r.Observe(d, Sent, true)
	}
	clk.Advance(time.Second)
	r.Observe("a", Sent, true) // b is now the least recently used
	r.Observe("d", Sent, true)
	if r.Len() != 3 {
		t.Fatalf("%d tracked, bound 3", r.Len())
	}
	c := r.Chart(10, "")
	var names []string
	for _, s := range c.Destinations {
		names = append(names, s.Destination)
	}
	if fmt.Sprint(names) != "[a c d]" || c.Tracked != 3 || c.MaxTracked != 3 {
		t.Fatalf("charted %v (tracked %d of %d), want [a c d]", names, c.Tracked, c.MaxTracked)
	}
	// A reading without sessions or pause does not make a destination
	// tracked; one with sessions or a pause does, but takes free room
	// only, never another destination's.
	clk.Advance(time.Second)
	r.Record(Sample{Name: "idle"})
	if r.Len() != 3 || has(r, "idle") {
		t.Fatal("an idle destination took a ring")
	}
	r.Record(Sample{Name: "busy", Active: 2})
	r.Record(Sample{Name: "paused", State: Paused, PausedUntil: clk.Now().Add(time.Minute)})
	if r.Len() != 3 || has(r, "busy") || has(r, "paused") || !has(r, "c") {
		t.Fatal("a reading evicted a destination")
	}
	// The policy holds a and d only; c is released. A destination
	// first used after the reading was taken stays.
	at := clk.Now()
	clk.Advance(time.Millisecond)
	r.Observe("e", Refused, true) // c was the least recently used
	r.Sample(at, []Sample{{Name: "a"}, {Name: "d"}})
	if !has(r, "e") || has(r, "c") || !has(r, "a") || !has(r, "d") || r.Len() != 3 {
		t.Fatalf("after the reading: a %v, c %v, d %v, e %v", has(r, "a"), has(r, "c"), has(r, "d"), has(r, "e"))
	}
	r.Sample(clk.Now().Add(time.Millisecond), nil)
	if r.Len() != 0 {
		t.Fatalf("%d tracked after the policy dropped everything", r.Len())
	}
	// With room, a reading of sessions open takes it.
	r.Record(Sample{Name: "busy", Active: 2})
	if !has(r, "busy") {
		t.Fatal("a destination with sessions open got no ring though there was room")
	}
}

// TestTenThousandDestinations: the memory is bounded by the recorder's
// size, not by the number of destinations. 10,000 destinations, each
// with attempts and a reading of the policy at every step, all paused
// at once at the end, leave max destinations tracked, the heap grown by
// at most max destinations' rings, and no allocation per attempt once
// every place is taken (an evicted destination's rings are reused).
func TestTenThousandDestinations(t *testing.T) {
	const max, n = 50, 10000
	r, clk := newAt(max, t0)
	names := make([]string, n)
	all := make([]Sample, n)
	for i := range names {
		names[i] = fmt.Sprintf("d%05d.test", i)
		all[i] = Sample{Name: names[i], Active: 1, Concurrency: 2, MaxConcurrency: 20}
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for step := range 3 {
		for i, d := range names {
			if i%100 == 0 {
				clk.Advance(time.Millisecond)
			}
			r.Observe(d, Outcome(i%3), true)
		}
		r.Sample(clk.Now(), all)
		clk.Set(t0.Add(time.Duration(step+1) * Step))
	}
	for i := range all {
		all[i].State, all[i].PausedUntil = Paused, clk.Now().Add(time.Minute)
	}
	slices.Reverse(all) // the last attempted are read first
	r.Sample(clk.Now(), all)
	if r.Len() != max {
		t.Fatalf("%d destinations tracked, bound %d", r.Len(), max)
	}
	// The last destinations attempted keep their rings: the readings of
	// the others did not take them.
	for _, d := range names[n-max:] {
		if !has(r, d) {
			t.Errorf("%s, among the last %d attempted, lost its ring to a reading", d, max)
			break
		}
	}
	grown := int64(heap()) - int64(before)
	runtime.KeepAlive(all) // live across both measures, or its death hides the rings
	if bound := int64(max)*int64(unsafe.Sizeof(dest{})) + 1<<20; grown > bound {
		t.Errorf("heap grew %d bytes for %d destinations; bound %d (%d rings and 1 MiB for the map)", grown, n, bound, max)
	}
	c := r.Chart(6, names[n-1])
	if c.Tracked != max || len(c.Destinations) != 7 {
		t.Errorf("chart: %d tracked, %d charted", c.Tracked, len(c.Destinations))
	}
	// Once full, a new destination reuses the rings it evicts: a few
	// bytes per attempt (its name, the map), not a ring's 16 KB.
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	const more = 1000
	for i := range more {
		r.Observe(fmt.Sprintf("new%05d.test", i), Sent, true)
		clk.Advance(time.Millisecond)
	}
	runtime.ReadMemStats(&m1)
	if per := (m1.TotalAlloc - m0.TotalAlloc) / more; per > 1024 {
		t.Errorf("%d bytes allocated per attempt at a new destination once full", per)
	}
	t.Logf("%d destinations: %d tracked, heap grew %d KiB (%d B per ring)", n, r.Len(), grown>>10, unsafe.Sizeof(dest{}))
}

func has(r *Recorder, name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dests[name] != nil
}

// TestBusiestAndSelected: the chart holds the n busiest, busiest first,
// and the selected destination wherever it ranks; an unknown selection
// adds nothing.
func TestBusiestAndSelected(t *testing.T) {
	t.Parallel()
	r, _ := newAt(10, t0)
	for i, d := range []string{"one", "two", "three", "four"} {
		for range i + 1 {
			r.Observe(d, Sent, true)
		}
	}
	names := func(c Chart) string {
		var out []string
		for _, s := range c.Destinations {
			n := s.Destination
			if s.Selected {
				n += "*"
			}
			out = append(out, n)
		}
		return fmt.Sprint(out)
	}
	if got := names(r.Chart(2, "")); got != "[four three]" {
		t.Errorf("busiest 2: %s", got)
	}
	if got := names(r.Chart(2, "one")); got != "[four three one*]" {
		t.Errorf("busiest 2 and one: %s", got)
	}
	if got := names(r.Chart(2, "three")); got != "[four three*]" {
		t.Errorf("busiest 2 with three selected: %s", got)
	}
	if got := names(r.Chart(2, "nowhere.test")); got != "[four three]" {
		t.Errorf("unknown selection: %s", got)
	}
}

// TestFixedMemory: a destination's memory is allocated once; counting an
// attempt and folding a reading allocate nothing.
func TestFixedMemory(t *testing.T) {
	r, clk := newAt(5, t0)
	r.Observe("d", Sent, true)
	if n := testing.AllocsPerRun(100, func() {
		clk.Advance(time.Second)
		r.Observe("d", Refused, true)
		r.Record(Sample{Name: "d", Active: 2, Concurrency: 3})
	}); n != 0 {
		t.Errorf("%v allocations per attempt and reading", n)
	}
	if size := unsafe.Sizeof(dest{}); size > 16<<10 {
		t.Errorf("a destination takes %d bytes; the budget is 16 KiB", size)
	}
	t.Logf("one destination: %d bytes for %d steps and %d pauses", unsafe.Sizeof(dest{}), Points, maxBands)
}

// TestRunReadsEveryStep: Run reads the policy at once, then at every
// step boundary of the injected clock, and stops with its context.
func TestRunReadsEveryStep(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New()
	clk.Set(t0.Add(3 * time.Second))
	r := New(5, clk.Now)
	reads := make(chan time.Time, 10)
	level := 0
	read := func() []Sample {
		reads <- clk.Now()
		level++
		return []Sample{{Name: "d", Active: 1, Concurrency: level, MaxConcurrency: 10}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	armed := clk.Armed()
	go func() { r.Run(ctx, clk, read); close(done) }()
	want := []time.Time{t0.Add(3 * time.Second), t0.Add(10 * time.Second), t0.Add(20 * time.Second), t0.Add(30 * time.Second)}
	for i, w := range want {
		if got := <-reads; !got.Equal(w) {
			t.Fatalf("reading %d at %v, want %v", i, got, w)
		}
		if i < len(want)-1 {
			<-armed // Run is waiting for the next step
			armed = clk.Armed()
			at, ok := clk.NextTimer()
			if !ok || !at.Equal(want[i+1]) {
				t.Fatalf("next reading armed for %v, want %v", at, want[i+1])
			}
			clk.Set(at)
		}
	}
	<-armed
	cancel()
	<-done
	s := only(t, r.Chart(5, ""), "d")
	// Four readings, one per step: the slow start climbs 1, 2, 3, 4.
	if got := fmt.Sprint(s.Concurrency[Points-4:]); got != "[1 2 3 4]" {
		t.Errorf("concurrency of the last 4 steps %s", got)
	}
}

// TestConcurrentUse runs attempts, readings, sweeps and charts at once
// (go test -race); every attempt is counted.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	// Room for every destination: eviction is TestEviction's; here the
	// readings release the others concurrently with their attempts.
	r, clk := newAt(16, t0)
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r.Observe("busy", Outcome(i%3), i%2 == 0)
				r.Observe(fmt.Sprintf("other%d", w), Sent, true)
				if r.WantReading("busy") {
					r.Record(Sample{Name: "busy", Active: 1, Concurrency: i % 7})
				}
			}
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range 200 {
			clk.Advance(50 * time.Millisecond)
			r.Sample(clk.Now(), []Sample{{Name: "busy", Active: 2}})
		}
	}()
	go func() {
		defer wg.Done()
		for range 100 {
			r.Chart(2, "busy")
		}
	}()
	wg.Wait()
	s := only(t, r.Chart(2, "busy"), "busy")
	if got := sum(s.Sent) + sum(s.Replies421) + sum(s.Refused); got != workers*each {
		t.Errorf("busy: %d attempts counted, want %d", got, workers*each)
	}
	if got := sum(s.Messages); got != workers*each/2 {
		t.Errorf("busy: %d transactions, want %d", got, workers*each/2)
	}
}
