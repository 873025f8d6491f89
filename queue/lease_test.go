package queue

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// TestLeaseExpiresAndIsReclaimed (issue 9 item 2): a lease whose outcome
// is never recorded returns to the due index at its deadline while the
// queue runs; a lease its holder still uses is extended instead, and an
// outcome recorded after the deadline still wins.
func TestLeaseExpiresAndIsReclaimed(t *testing.T) {
	t.Parallel()
	const ttl = 10 * time.Minute
	q, c, _ := openTest(t, func(o *Options) { o.LeaseTimeout = ttl })
	lost := enqueue(t, q, "lost@x.test")
	kept := enqueue(t, q, "kept@y.test")
	start := c.Now()
	items, err := q.Lease(start, 10)
	if err != nil || len(items) != 2 {
		t.Fatalf("Lease = %+v %v", items, err)
	}
	held := func(id string, _ int) bool { return id == kept }

	// Before the deadline: nothing moves, and nothing is written.
	before := q.Commits()
	n, next, err := q.Reclaim(c.Advance(ttl-time.Second), held)
	if err != nil || n != 0 || !next.Equal(start.Add(ttl)) {
		t.Fatalf("Reclaim before the deadline = %d, %v, %v; want 0, %v", n, next, err, start.Add(ttl))
	}
	if q.Commits() != before {
		t.Errorf("Reclaim with nothing expired committed")
	}

	// At the deadline: the lost lease is due again, the held one extended.
	now := c.Advance(time.Second)
	n, next, err = q.Reclaim(now, held)
	if err != nil || n != 1 || !next.Equal(now.Add(ttl)) {
		t.Fatalf("Reclaim at the deadline = %d, %v, %v; want 1, %v", n, next, err, now.Add(ttl))
	}
	if m, _ := q.Get(lost); m.Recipients[0].State != StateQueued || !m.Recipients[0].NextAttempt.Equal(now) {
		t.Errorf("lost lease after Reclaim: %+v", m.Recipients[0])
	}
	if m, _ := q.Get(kept); m.Recipients[0].State != StateActive {
		t.Errorf("held lease after Reclaim: %+v", m.Recipients[0])
	}
	if cnt, _ := q.Counts(); cnt[StateActive] != 1 || cnt[StateQueued] != 1 {
		t.Errorf("counts = %v", cnt)
	}
	checkInvariants(t, q)
	again, err := q.Lease(now, 10)
	if err != nil || len(again) != 1 || again[0].ID != lost {
		t.Fatalf("Lease after Reclaim = %+v %v", again, err)
	}

	// The held delivery's outcome arrives late (its commit was retried):
	// it is recorded, and the recipient is not leased again.
	update(t, q, Update{ID: kept, State: StateSent, Attempt: &Attempt{Reply: "250 ok"}})
	c.Advance(2 * ttl)
	if n, _, err := q.Reclaim(c.Now(), nil); err != nil || n != 1 {
		t.Fatalf("Reclaim of the second lease = %d, %v", n, err)
	}
	if m, _ := q.Get(kept); m.Recipients[0].State != StateSent {
		t.Errorf("late outcome lost: %+v", m.Recipients[0])
	}
	if n, next, err := q.Reclaim(c.Now(), nil); err != nil || n != 0 || !next.IsZero() {
		t.Errorf("Reclaim with no lease = %d, %v, %v", n, next, err)
	}
	checkInvariants(t, q)
}

// TestReclaimCostsExpiredOnly: with many live leases and a few expired
// ones, Reclaim touches the expired ones only (the active index is
// ordered by deadline).
func TestReclaimCostsExpiredOnly(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, func(o *Options) { o.LeaseTimeout = time.Hour; o.NoSync = true })
	for range 3 {
		enqueue(t, q, "old@x.test")
	}
	if items, err := q.Lease(c.Now(), 10); err != nil || len(items) != 3 {
		t.Fatal(items, err)
	}
	c.Advance(30 * time.Minute)
	for range 2000 {
		enqueue(t, q, "new@x.test")
	}
	if items, err := q.Lease(c.Now(), 5000); err != nil || len(items) != 2000 {
		t.Fatal(len(items), err)
	}
	c.Advance(31 * time.Minute)
	calls := 0
	n, _, err := q.Reclaim(c.Now(), func(string, int) bool { calls++; return false })
	if err != nil || n != 3 || calls != 3 {
		t.Errorf("Reclaim = %d, %v, held asked %d times; want 3 leases, 3 calls", n, err, calls)
	}
	checkInvariants(t, q)
}

// TestLegacyActiveKeysReturnAtOpen: a file written before leases had
// deadlines (active index keyed by id || idx) opens, and its leases
// return to due.
func TestLegacyActiveKeysReturnAtOpen(t *testing.T) {
	t.Parallel()
	c := newClock()
	o := testOptions(filepath.Join(t.TempDir(), "q.db"))
	o.Now, o.LeaseTimeout = c.Now, time.Hour
	q, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	id := enqueue(t, q, "a@x.test")
	if _, err := q.Lease(c.Now(), 10); err != nil {
		t.Fatal(err)
	}
	// Rewrite the lease the old way.
	err = q.write(context.Background(), func(w *wtx) error {
		r, err := w.rcpt(id, 0)
		if err != nil {
			return err
		}
		if err := w.b(bktActive).Delete(leaseKey(r.LeaseUntil, id, 0)); err != nil {
			return err
		}
		r.LeaseUntil = time.Time{}
		if err := w.putRcpt(id, 0, r); err != nil {
			return err
		}
		return w.b(bktActive).Put(rcptKey(id, 0), nil)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	q, err = Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if m, _ := q.Get(id); m.Recipients[0].State != StateQueued {
		t.Errorf("legacy lease after Open: %+v", m.Recipients[0])
	}
	_ = q.view(func(tx *bbolt.Tx) error {
		if k, _ := tx.Bucket(bktActive).Cursor().First(); k != nil {
			t.Errorf("active index not empty: %x", k)
		}
		return nil
	})
	checkInvariants(t, q)
}

// TestReturnLeases: every lease not held (of one domain, when given) is
// due again now, whatever its deadline.
func TestReturnLeases(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, func(o *Options) { o.LeaseTimeout = time.Hour })
	a := enqueue(t, q, "a@x.test", "b@y.test")
	h := enqueue(t, q, "h@x.test")
	if items, err := q.Lease(c.Now(), 10); err != nil || len(items) != 3 {
		t.Fatal(items, err)
	}
	held := func(id string, _ int) bool { return id == h }
	if n, err := q.ReturnLeases(c.Now(), "X.test", held); err != nil || n != 1 {
		t.Fatalf("ReturnLeases(x.test) = %d, %v", n, err)
	}
	if n, err := q.ReturnLeases(c.Now(), "", held); err != nil || n != 1 {
		t.Fatalf("ReturnLeases() = %d, %v", n, err)
	}
	m, _ := q.Get(a)
	mh, _ := q.Get(h)
	if m.Recipients[0].State != StateQueued || m.Recipients[1].State != StateQueued || mh.Recipients[0].State != StateActive {
		t.Errorf("states: %+v %+v", m.Recipients, mh.Recipients)
	}
	checkInvariants(t, q)
}
