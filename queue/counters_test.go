package queue

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// summaryBounds are the qshape bucket bounds the admin summary uses.
var summaryBounds = []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, 80 * time.Minute, 160 * time.Minute}

// choices is where a counters run takes its decisions: a seeded PRNG
// for the property test, the fuzzer's bytes for the fuzz test.
type choices interface {
	intn(n int) int
	done() bool
}

type randChoices struct {
	r    *rand.Rand
	left int
}

func (c *randChoices) intn(n int) int { c.left--; return c.r.IntN(n) }
func (c *randChoices) done() bool     { return c.left <= 0 }

type byteChoices struct{ b []byte }

func (c *byteChoices) intn(n int) int {
	if len(c.b) == 0 {
		return 0
	}
	v := int(c.b[0]) % n
	c.b = c.b[1:]
	return v
}
func (c *byteChoices) done() bool { return len(c.b) == 0 }

var counterDomains = []string{"a.test", "B.test", "c.test", "d.test", "nodomain"}

// runCounters drives a queue through a sequence of operations chosen by
// ch (every writer of a recipient state: enqueue, lease, each outcome,
// hold, release, delete, flush, bounce, reclaim, return of leases,
// prune, a restart, the clock moving by seconds to days) and, after
// each, compares the counters, the histograms and the recipient index
// with a full recount (verifyCounters, through Check) and the summary
// the counters give with one computed from the messages.
func runCounters(t *testing.T, ch choices) {
	q, c, o := openTest(t, func(o *Options) { o.LeaseTimeout = time.Minute })
	ctx := context.Background()
	var leased []Item
	ids := func() []string {
		ms, err := q.List(Filter{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range ms {
			if ch.intn(2) == 0 {
				out = append(out, m.ID)
			}
		}
		return out
	}
	dsn := func(m *Message, _ []int) (*NewMessage, error) {
		if m.From == "" {
			return nil, nil
		}
		return &NewMessage{Rcpts: []string{m.From}, Body: []byte("Subject: dsn\r\n\r\nx\r\n")}, nil
	}
	for step := 0; !ch.done() && step < 400; step++ {
		op := ch.intn(14)
		var what string
		switch op {
		case 0, 1, 2:
			n := 1 + ch.intn(3)
			var rcpts []string
			for i := 0; i < n; i++ {
				d := counterDomains[ch.intn(len(counterDomains))]
				if d == "nodomain" {
					rcpts = append(rcpts, fmt.Sprintf("local%d", i))
				} else {
					rcpts = append(rcpts, fmt.Sprintf("u%d@%s", i, d))
				}
			}
			what = "enqueue"
			enqueue(t, q, rcpts...)
		case 3:
			what = "lease"
			items, err := q.Lease(c.Now(), 1+ch.intn(6))
			if err != nil {
				t.Fatal(err)
			}
			leased = append(leased, items...)
		case 4:
			what = "outcomes"
			var ups []Update
			for len(leased) > 0 && ch.intn(4) != 0 {
				it := leased[0]
				leased = leased[1:]
				u := Update{ID: it.ID, Rcpt: it.Rcpt, Attempt: &Attempt{At: c.Now(), Reply: "x"}}
				switch ch.intn(4) {
				case 0:
					u.State, u.NextAttempt = StateQueued, c.Now().Add(time.Duration(ch.intn(120))*time.Minute)
				case 1:
					u.State = StateSent
				case 2:
					u.State = StateBounced
				default:
					u.State = StateExpired
				}
				ups = append(ups, u)
			}
			update(t, q, ups...)
		case 5:
			what = "hold"
			if _, err := q.Hold(ids()); err != nil {
				t.Fatal(err)
			}
		case 6:
			what = "release"
			if _, err := q.Release(ids()); err != nil {
				t.Fatal(err)
			}
		case 7:
			what = "delete"
			if _, err := q.Delete(ids()); err != nil {
				t.Fatal(err)
			}
		case 8:
			what = "flush"
			d := ""
			if ch.intn(2) == 0 {
				d = counterDomains[ch.intn(len(counterDomains))]
			}
			if _, err := q.Flush(ctx, d, nil); err != nil {
				t.Fatal(err)
			}
		case 9:
			what = "bounce"
			if _, err := q.Bounce(ids(), Attempt{Reply: "op"}, dsn); err != nil {
				t.Fatal(err)
			}
		case 10:
			what = "clock"
			steps := []time.Duration{time.Second, 37 * time.Second, 4 * time.Minute, 9 * time.Minute, 25 * time.Minute, 25 * time.Minute, 50 * time.Minute, 3 * time.Hour, 3 * 24 * time.Hour}
			c.Advance(steps[ch.intn(len(steps))])
		case 11:
			what = "reclaim or return leases"
			held := func(string, int) bool { return ch.intn(2) == 0 }
			var err error
			if ch.intn(2) == 0 {
				_, _, err = q.Reclaim(c.Now(), held)
			} else {
				_, err = q.ReturnLeases(c.Now(), counterDomains[ch.intn(len(counterDomains))], held)
			}
			if err != nil {
				t.Fatal(err)
			}
			leased = leased[:0] // their outcomes may now be stale; Update copes, but keep it simple
		case 12:
			what = "prune"
			if _, err := q.Prune(c.Now()); err != nil {
				t.Fatal(err)
			}
		case 13:
			what = "domain pages"
			d := counterDomains[ch.intn(len(counterDomains))]
			change := []func([]string) (int, error){q.Hold, q.Release, q.Delete}[ch.intn(3)]
			err := q.DomainPages(ctx, d, 1+ch.intn(3), func(ids []string) error { _, err := change(ids); return err })
			if err != nil {
				t.Fatal(err)
			}
		}
		if ch.intn(25) == 0 {
			what += ", restart"
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			var err error
			if q, err = Open(o); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = q.Close() })
			leased = leased[:0]
		}
		if err := q.Check(); err != nil {
			t.Fatalf("step %d (%s): %v", step, what, err)
		}
		compareSummary(t, q, c.Now(), fmt.Sprintf("step %d (%s)", step, what))
	}
	checkInvariants(t, q)
}

// compareSummary checks DomainCounts against the messages themselves:
// per domain, the recipients per state, and the open ones by the age of
// their minute of arrival.
func compareSummary(t *testing.T, q *Queue, now time.Time, where string) {
	t.Helper()
	msgs, err := q.List(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		states map[State]int
		ages   []int
	}
	want := map[string]*row{}
	for _, m := range msgs {
		arrived := m.Received.Truncate(binWidth)
		for _, r := range m.Recipients {
			w := want[r.Domain]
			if w == nil {
				w = &row{states: map[State]int{}, ages: make([]int, len(summaryBounds)+1)}
				want[r.Domain] = w
			}
			w.states[r.State]++
			if r.State.Open() {
				age := now.Sub(arrived)
				w.ages[sort.Search(len(summaryBounds), func(i int) bool { return age < summaryBounds[i] })]++
			}
		}
	}
	got, err := q.DomainCounts(now, summaryBounds)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%s: DomainCounts has %d domains, the messages %d", where, len(got), len(want))
	}
	for _, g := range got {
		w := want[g.Domain]
		if w == nil {
			t.Fatalf("%s: DomainCounts has %q, no message has", where, g.Domain)
		}
		for _, s := range AllStates {
			if g.States[s] != w.states[s] {
				t.Fatalf("%s: %q %s = %d, recount %d", where, g.Domain, s, g.States[s], w.states[s])
			}
		}
		if !slices.Equal(g.Ages, w.ages) {
			t.Fatalf("%s: %q ages %v, recount %v", where, g.Domain, g.Ages, w.ages)
		}
	}
}

// TestCountersEqualRecount: after random sequences of every kind of
// state change, the counters kept in the transactions equal a recount.
// SLUICE_LONG=1 runs more sequences.
func TestCountersEqualRecount(t *testing.T) {
	t.Parallel()
	seeds := 6
	if os.Getenv("SLUICE_LONG") != "" {
		seeds = 200
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			runCounters(t, &randChoices{r: rand.New(rand.NewPCG(uint64(seed), 10)), left: 1500})
		})
	}
}

// FuzzCounters is TestCountersEqualRecount with the fuzzer choosing.
func FuzzCounters(f *testing.F) {
	f.Add([]byte{0, 0, 1, 3, 5, 4, 1, 1, 10, 5, 8, 0, 12, 10, 5, 12})
	f.Add([]byte{2, 3, 2, 3, 9, 1, 6, 0, 13, 1, 2, 0, 10, 4, 10, 4, 11, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 600 {
			b = b[:600]
		}
		runCounters(t, &byteChoices{b: b})
	})
}

// TestCheckFindsCounterDrift: the recount notices a counter, a histogram
// bin or an index entry that disagrees with the records.
func TestCheckFindsCounterDrift(t *testing.T) {
	t.Parallel()
	damage := []struct {
		name string
		do   func(tx *bbolt.Tx, id string) error
	}{
		{"state counter", func(tx *bbolt.Tx, _ string) error {
			d, _ := decodeDomStats(tx.Bucket(bktDomStats).Get(statsKey("a.test")))
			d.n[0]++
			return tx.Bucket(bktDomStats).Put([]byte("a.test"), d.encode())
		}},
		{"histogram", func(tx *bbolt.Tx, _ string) error {
			d, _ := decodeDomStats(tx.Bucket(bktDomStats).Get(statsKey("a.test")))
			d.bins[0].bin--
			return tx.Bucket(bktDomStats).Put([]byte("a.test"), d.encode())
		}},
		{"index entry lost", func(tx *bbolt.Tx, id string) error {
			return tx.Bucket(bktRcptIdx).Delete(idxKey("a.test", classPending, id, 0))
		}},
		{"index entry in the wrong class", func(tx *bbolt.Tx, id string) error {
			if err := tx.Bucket(bktRcptIdx).Delete(idxKey("a.test", classPending, id, 0)); err != nil {
				return err
			}
			return tx.Bucket(bktRcptIdx).Put(idxKey("a.test", classHeld, id, 0), nil)
		}},
		{"domain forgotten", func(tx *bbolt.Tx, _ string) error {
			return tx.Bucket(bktDomStats).Delete([]byte("a.test"))
		}},
	}
	for _, d := range damage {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			q, _, _ := openTest(t, nil)
			id := enqueue(t, q, "x@a.test")
			if err := q.Check(); err != nil {
				t.Fatal(err)
			}
			q.mu.RLock()
			err := q.db.Update(func(tx *bbolt.Tx) error { return d.do(tx, id) })
			q.mu.RUnlock()
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Check(); err == nil {
				t.Fatal("Check found nothing")
			}
		})
	}
}

// TestCountersBuiltForOldFile: a file written before the counters
// existed gets them at its next Open, equal to a recount.
func TestCountersBuiltForOldFile(t *testing.T) {
	t.Parallel()
	q, c, o := openTest(t, nil)
	for i := range 30 {
		enqueue(t, q, fmt.Sprintf("a%d@a.test", i), fmt.Sprintf("b%d@b.test", i))
		c.Advance(7 * time.Minute)
	}
	items, _ := q.Lease(c.Now(), 10)
	for _, it := range items[:5] {
		update(t, q, Update{ID: it.ID, Rcpt: it.Rcpt, State: StateSent})
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	// Make it look like an old file: no counters, no index, no version.
	db, err := bbolt.Open(o.Path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bktDomStats, bktRcptIdx} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bktStats).Delete(statsVersionKey)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	q, err = Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	checkInvariants(t, q)
	compareSummary(t, q, c.Now(), "after the build")
	// b0 and b1 were sent; the leases left by the close are queued again.
	if ms, err := q.List(Filter{Domain: "b.test", State: StateQueued}); err != nil || len(ms) != 28 {
		t.Fatalf("List by the built index = %d, %v", len(ms), err)
	}
}

// TestHistogramBounded: arrivals spread over days keep at most about
// foldAge/binWidth bins per domain; the older ones read as 160m+.
func TestHistogramBounded(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	for range 600 { // ten hours, one message a minute
		enqueue(t, q, "x@a.test")
		c.Advance(time.Minute)
	}
	var bins int
	err := q.view(func(tx *bbolt.Tx) error {
		d, err := decodeDomStats(tx.Bucket(bktDomStats).Get(statsKey("a.test")))
		bins = len(d.bins)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if limit := int(foldAge/binWidth) + 1; bins > limit {
		t.Errorf("%d bins, want at most %d", bins, limit)
	}
	compareSummary(t, q, c.Now(), "after ten hours")
	got, _ := q.DomainCounts(c.Now(), summaryBounds)
	// Ages count from the minute of arrival: the arrivals 0..440
	// minutes after the start are at least 160 minutes old at 600.
	if got[0].Ages[len(summaryBounds)] != 441 {
		t.Errorf("160m+ = %d, want 441", got[0].Ages[len(summaryBounds)])
	}
	// The decoder bounds the bins a record may claim.
	d := &domStats{bins: make([]histBin, maxBins+10)}
	for i := range d.bins {
		d.bins[i] = histBin{bin: int64(i), n: 1}
	}
	d.fold(time.Unix(0, 0))
	if len(d.bins) != maxBins || d.old != 10 {
		t.Errorf("fold over maxBins left %d bins, old %d", len(d.bins), d.old)
	}
}

// TestCheckPathRecountsCounters: the offline `queue check` recounts the
// recipients and names a counter that drifted.
func TestCheckPathRecountsCounters(t *testing.T) {
	t.Parallel()
	q, _, o := openTest(t, nil)
	for range 20 {
		enqueue(t, q, "a@x.test", "b@y.test")
	}
	q.Close()
	if rep, err := CheckPath(o.Path); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("sound file: %+v, %v", rep, err)
	}
	db, err := bbolt.Open(o.Path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		d, err := decodeDomStats(tx.Bucket(bktDomStats).Get(statsKey("y.test")))
		if err != nil {
			return err
		}
		d.n[stateIndex(StateQueued)] = 3
		return tx.Bucket(bktDomStats).Put(statsKey("y.test"), d.encode())
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := CheckPath(o.Path)
	if err != nil || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], `domain "y.test"`) {
		t.Errorf("drifted counter: %+v, %v", rep, err)
	}
}

// TestUnreadableCountersDoNotStopMail: counters are derived data. A
// domain record that cannot be decoded does not stop mail to the domain
// nor the summary of the others; it starts over and `Check` names the
// drift.
func TestUnreadableCountersDoNotStopMail(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	enqueue(t, q, "a@bad.test", "b@good.test")
	q.mu.RLock()
	err := q.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bktDomStats).Put(statsKey("bad.test"), []byte{9, 9}) })
	q.mu.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	got, err := q.DomainCounts(c.Now(), summaryBounds)
	if err != nil || len(got) != 1 || got[0].Domain != "good.test" {
		t.Fatalf("DomainCounts with a bad record = %+v, %v", got, err)
	}
	if ms, err := q.List(Filter{State: StateQueued}); err != nil || len(ms) != 1 {
		t.Fatalf("List by state with a bad record = %d, %v", len(ms), err)
	}
	enqueue(t, q, "c@bad.test")
	if err := q.Check(); err == nil || !strings.Contains(err.Error(), "bad.test") {
		t.Fatalf("Check = %v, want the drift of bad.test", err)
	}
}

// FuzzDecodeDomStats: any stored bytes decode to an error or to a record
// that encodes back to bytes decoding to the same record.
func FuzzDecodeDomStats(f *testing.F) {
	d := &domStats{oldBefore: 100, old: 3, bins: []histBin{{100, 2}, {107, 1}}}
	d.n[0], d.n[6] = 5, 9
	f.Add(d.encode())
	f.Add([]byte{1})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 15})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeDomStats(b)
		if err != nil {
			return
		}
		d2, err := decodeDomStats(d.encode())
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if d2.n != d.n || d2.old != d.old || d2.oldBefore != d.oldBefore || !slices.Equal(d2.bins, d.bins) {
			t.Fatalf("round trip: %+v != %+v", d2, d)
		}
	})
}
