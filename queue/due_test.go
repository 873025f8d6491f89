package queue

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// TestLeaseDueTakesOneDomainInDueOrder (issue 10 item 1): LeaseDue
// takes due work of one domain only, in NextAttempt order, counting the
// recipients of one message at that domain as one job; other domains'
// entries, due or not, stay untouched.
func TestLeaseDueTakesOneDomainInDueOrder(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	t0 := c.Now()
	// Three messages to a.test, deferred to shuffled times; one message
	// with two recipients at a.test and one at b.test; a.test.example (a
	// domain a.test is a prefix of) and b.test have due work too.
	var ids []string
	for range 3 {
		ids = append(ids, enqueue(t, q, "r@a.test"))
	}
	if _, err := q.Lease(t0, 10); err != nil {
		t.Fatal(err)
	}
	for i, off := range []time.Duration{30, 10, 20} {
		update(t, q, Update{ID: ids[i], State: StateQueued, NextAttempt: t0.Add(off * time.Minute)})
	}
	pair := enqueue(t, q, "x@a.test", "y@b.test", "z@A.TEST")
	other := enqueue(t, q, "r@a.test.example")
	c.Advance(time.Minute)

	items, err := leaseDue(q, c.Now(), "a.test", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].ID != pair || items[1].ID != pair || items[0].Rcpt != 0 || items[1].Rcpt != 2 {
		t.Fatalf("LeaseDue at t0+1m = %+v; want the two a.test recipients of %s (one job)", items, pair)
	}
	heads, _, err := q.DueHeads()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"a.test": t0.Add(10 * time.Minute), "b.test": t0, "a.test.example": t0}
	if len(heads) != len(want) {
		t.Fatalf("DueHeads = %v, want %v", heads, want)
	}
	for d, at := range want {
		if !heads[d].Equal(at) {
			t.Errorf("head of %s = %v, want %v", d, heads[d], at)
		}
	}
	// maxJobs bounds by message, and the order is NextAttempt order.
	items, err = leaseDue(q, t0.Add(time.Hour), "a.test", 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{items[0].ID, items[1].ID}; len(items) != 2 || !slices.Equal(got, []string{ids[1], ids[2]}) {
		t.Fatalf("LeaseDue(max 2) = %+v, want %v", items, []string{ids[1], ids[2]})
	}
	if items, _ := leaseDue(q, t0.Add(time.Hour), "b.test", 0); items != nil {
		t.Errorf("LeaseDue(max 0) = %v", items)
	}
	if items, _ := leaseDue(q, t0.Add(time.Hour), "none.test", 5); len(items) != 0 {
		t.Errorf("LeaseDue of a domain without work = %v", items)
	}
	if m, _ := q.Get(other); m.Recipients[0].State != StateQueued {
		t.Errorf("a.test.example leased by a lease of a.test: %+v", m.Recipients[0])
	}
	checkInvariants(t, q)
}

// TestLeaseDueServesRequestsInOrder: one LeaseDue answers several
// destinations, each from its domains in the order given, up to its
// number of messages.
func TestLeaseDueServesRequestsInOrder(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	a1 := enqueue(t, q, "r@a.test")
	a2 := enqueue(t, q, "r@a.test")
	b1 := enqueue(t, q, "r@b.test")
	c1 := enqueue(t, q, "r@c.test")
	out, err := q.LeaseDue(c.Now(), []LeaseReq{
		{Domains: []string{"b.test", "a.test"}, MaxJobs: 2},
		{Domains: []string{"c.test"}, MaxJobs: 5},
		{Domains: []string{"a.test"}, MaxJobs: 0},
	})
	if err != nil || len(out) != 3 {
		t.Fatalf("LeaseDue = %v, %v", out, err)
	}
	var got [][]string
	for _, items := range out {
		var ids []string
		for _, it := range items {
			ids = append(ids, it.ID)
		}
		got = append(got, ids)
	}
	if want := [][]string{{b1, a1}, {c1}, nil}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("LeaseDue took %v, want %v", got, want)
	}
	if m, _ := q.Get(a2); m.Recipients[0].State != StateQueued {
		t.Errorf("a third message leased beyond MaxJobs: %+v", m.Recipients[0])
	}
	checkInvariants(t, q)
}

func leaseDue(q *Queue, now time.Time, domain string, max int) ([]Item, error) {
	out, err := q.LeaseDue(now, []LeaseReq{{Domains: []string{domain}, MaxJobs: max}})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// TestDueFeedReportsHeadChanges: the due feed reports, per domain, the
// head after each commit that changed it, and a LeaseDue's own change is
// in the feed when LeaseDue returns; changes before the snapshot are not
// reported again.
func TestDueFeedReportsHeadChanges(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	t0 := c.Now()
	enqueue(t, q, "r@before.test")
	w, heads, err := q.WatchDue()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, again, err := q.WatchDue(); err == nil || again != nil {
		t.Errorf("a second WatchDue = %v, %v; want an error", again, err)
	}
	if len(heads) != 1 || !heads["before.test"].Equal(t0) {
		t.Fatalf("snapshot = %v", heads)
	}
	if got := w.Take(); len(got) != 0 {
		t.Errorf("Take before any change = %v", got)
	}
	c.Advance(time.Second)
	id := enqueue(t, q, "r@new.test")
	select {
	case <-w.C():
	default:
		t.Fatal("no signal after an enqueue")
	}
	got := w.Take()
	if h := got["new.test"]; len(got) != 1 || !h.Due || !h.At.Equal(t0.Add(time.Second)) {
		t.Fatalf("Take after enqueue = %+v", got)
	}
	if _, err := leaseDue(q, c.Now(), "new.test", 5); err != nil {
		t.Fatal(err)
	}
	if h, ok := w.Take()["new.test"]; !ok || h.Due {
		t.Fatalf("after LeaseDue the feed says %+v, %v; want the domain empty", h, ok)
	}
	retry := c.Now().Add(time.Hour)
	update(t, q, Update{ID: id, State: StateQueued, NextAttempt: retry})
	if h := w.Take()["new.test"]; !h.Due || !h.At.Equal(retry) {
		t.Fatalf("after a deferral the feed says %+v", h)
	}
	// A write that touches no due entry reports nothing.
	if err := q.SaveDestination("x", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if got := w.Take(); len(got) != 0 {
		t.Errorf("Take after an unrelated write = %v", got)
	}
}

// TestOldDueIndexMigrates: a file written with the single time-ordered
// due index opens with the per-domain one, every queued recipient in it.
func TestOldDueIndexMigrates(t *testing.T) {
	t.Parallel()
	q, c, o := openTest(t, nil)
	var ids []string
	for i := range 5 {
		ids = append(ids, enqueue(t, q, fmt.Sprintf("u%d@d%d.test", i, i%2)))
	}
	if _, err := q.Lease(c.Now(), 1); err != nil { // one active: not in the due index
		t.Fatal(err)
	}
	q.Close()
	// Rewrite the due index as the old layout had it.
	db, err := bbolt.Open(o.Path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		old, err := tx.CreateBucket(bktOldDue)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bktDue).ForEach(func(k, _ []byte) error {
			_, _, at, id, idx, err := parseDueKey(k)
			if err != nil {
				return err
			}
			ok := leaseKey(at, id, idx)
			return old.Put(ok, nil)
		}); err != nil {
			return err
		}
		return tx.DeleteBucket(bktDue)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	q2, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	checkInvariants(t, q2)
	heads, _, err := q2.DueHeads()
	if err != nil || len(heads) != 2 {
		t.Fatalf("DueHeads after migration = %v, %v", heads, err)
	}
	items, err := q2.Lease(c.Now(), 10)
	if err != nil || len(items) != 5 { // 4 queued + the lease Open returned
		t.Fatalf("Lease after migration = %d items, %v", len(items), err)
	}
	err = q2.view(func(tx *bbolt.Tx) error {
		if tx.Bucket(bktOldDue) != nil {
			return fmt.Errorf("the old due bucket is still there")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// TestDueIndexFill (issue 10 item 4): the due index's pages are filled
// to suit how they grow: fresh mail goes in at the end of its domain's
// range (pages filled to 90 %), deferrals anywhere in it (pages split in
// half, which random inserts fill better).
func TestDueIndexFill(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, func(o *Options) { o.NoSync = true })
	const n = 4000
	fill := func() float64 {
		var f float64
		q.view(func(tx *bbolt.Tx) error {
			st := tx.Bucket(bktDue).Stats()
			f = float64(st.LeafInuse) / float64(st.LeafAlloc)
			return nil
		})
		return f
	}
	var ids []string
	for i := range n {
		ids = append(ids, enqueue(t, q, fmt.Sprintf("u%d@dest.test", i)))
		c.Advance(time.Millisecond)
	}
	if f := fill(); f < 0.8 {
		t.Errorf("fresh mail: due index %.0f%% full, want at least 80%%", 100*f)
	}
	// Every recipient is tried and deferred to a time of its own.
	t0 := c.Now()
	for start := 0; start < n; start += 100 {
		items, err := q.Lease(t0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var ups []Update
		for _, it := range items {
			ups = append(ups, Update{ID: it.ID, Rcpt: it.Rcpt, State: StateQueued, NextAttempt: t0.Add(time.Duration((start+len(ups))*7919%n) * time.Second)})
		}
		update(t, q, ups...)
	}
	if f := fill(); f < 0.55 {
		t.Errorf("deferred mail: due index %.0f%% full, want at least 55%%", 100*f)
	}
	checkInvariants(t, q)
	_ = ids
}

// TestRetryNotBehindBacklog (issue 11, bench/throttle's drop): a
// recipient deferred while a backlog of first attempts waits at its
// domain is leased as soon as its retry is due, although the backlog was
// due before it (at its arrival): the two lanes are served in turn, one
// job each, and the turn carries over from one lease to the next. In one
// due order the retry waited behind the whole backlog.
func TestRetryNotBehindBacklog(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	t0 := c.Now()
	// Two recipients tried and deferred to t0+5s and t0+6s, then a
	// backlog of 50 first attempts, all due at t0.
	r1 := enqueue(t, q, "r1@a.test")
	r2 := enqueue(t, q, "r2@a.test")
	if items, err := q.Lease(t0, 2); err != nil || len(items) != 2 {
		t.Fatalf("Lease = %v, %v", items, err)
	}
	refused := &Attempt{At: t0, Reply: "421 4.7.0 try later", Class: "throttle", Status: "deferred"}
	update(t, q,
		Update{ID: r1, State: StateQueued, NextAttempt: t0.Add(5 * time.Second), Attempt: refused},
		Update{ID: r2, State: StateQueued, NextAttempt: t0.Add(6 * time.Second), Attempt: refused})
	var backlog []string
	for range 50 {
		backlog = append(backlog, enqueue(t, q, "b@a.test"))
	}
	lease1 := func(at time.Time) string {
		t.Helper()
		items, err := leaseDue(q, at, "a.test", 1)
		if err != nil || len(items) != 1 {
			t.Fatalf("LeaseDue(1) at %v = %v, %v", at.Sub(t0), items, err)
		}
		return items[0].ID
	}
	var got []string
	// Before the retries are due: first attempts only.
	got = append(got, lease1(t0.Add(time.Second)), lease1(t0.Add(time.Second)))
	// At t0+6s both retries are due: they alternate with the backlog,
	// one job each, across leases of one job.
	for range 4 {
		got = append(got, lease1(t0.Add(6*time.Second)))
	}
	want := []string{backlog[0], backlog[1], r1, backlog[2], r2, backlog[3]}
	if !slices.Equal(got, want) {
		t.Errorf("leased %v,\nwant    %v (retries r1=%s r2=%s in turn with the backlog)", got, want, r1, r2)
	}
	// A larger lease interleaves too, and the head is the earlier lane's.
	r3 := backlog[4]
	items, err := leaseDue(q, t0.Add(7*time.Second), "a.test", 1)
	if err != nil || len(items) != 1 || items[0].ID != r3 {
		t.Fatalf("LeaseDue = %v, %v; want %s", items, err, r3)
	}
	update(t, q, Update{ID: r3, State: StateQueued, NextAttempt: t0.Add(8 * time.Second), Attempt: refused})
	heads, _, err := q.DueHeads()
	if err != nil || !heads["a.test"].Equal(t0) {
		t.Errorf("DueHeads = %v, %v; want a.test at t0 (the backlog's head)", heads, err)
	}
	items, err = leaseDue(q, t0.Add(8*time.Second), "a.test", 3)
	if err != nil || len(items) != 3 || items[0].ID != r3 || items[1].ID != backlog[5] || items[2].ID != backlog[6] {
		t.Errorf("LeaseDue(3) = %v, %v; want %s (the retry) then two first attempts", items, err, r3)
	}
	checkInvariants(t, q)
}

// TestDueKeyBeforeLanes: a file written before the lanes has every due
// key in the first-attempt lane, tried recipients too. Such a key is
// leased like any other, and removed by any change while it is queued;
// the recipient's next deferral goes in the retry lane.
func TestDueKeyBeforeLanes(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	t0 := c.Now()
	id := enqueue(t, q, "r@a.test")
	refused := &Attempt{At: t0, Reply: "421 4.7.0 try later", Class: "throttle", Status: "deferred"}
	next := t0
	// defer leases the recipient and defers it a second later; old
	// moves its key to the first-attempt lane, as the old layout had it.
	deferIt := func() {
		t.Helper()
		if items, err := leaseDue(q, next, "a.test", 1); err != nil || len(items) != 1 || items[0].ID != id {
			t.Fatalf("LeaseDue = %v, %v", items, err)
		}
		next = next.Add(time.Second)
		update(t, q, Update{ID: id, State: StateQueued, NextAttempt: next, Attempt: refused})
		checkInvariants(t, q)
	}
	old := func() {
		t.Helper()
		err := q.db.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket(bktDue)
			if err := b.Delete(dueKey("a.test", laneRetry, next, id, 0)); err != nil {
				return err
			}
			return b.Put(dueKey("a.test", laneFirst, next, id, 0), nil)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	deferIt()
	old()
	deferIt() // leased from the old lane
	old()
	// An operator's change while it is queued (here a new due time)
	// removes it from either lane.
	next = next.Add(time.Second)
	update(t, q, Update{ID: id, State: StateQueued, NextAttempt: next})
	checkInvariants(t, q)
	deferIt()
}
