package queue

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEnqueueGetBody(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	body := bytes.Repeat([]byte("x"), 2048)
	id, err := q.Enqueue(context.Background(), NewMessage{
		From: "", Rcpts: []string{"A@Example.COM", `"odd@local"@Sub.Example.net`},
		Body: body, ClientAddr: "192.0.2.1:25", Helo: "h.test", User: "alice", SMTPUTF8: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !validID(id) {
		t.Fatalf("bad id %q", id)
	}
	m, err := q.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != id || m.From != "" || m.Size != 2048 || m.User != "alice" || !m.SMTPUTF8 ||
		m.Helo != "h.test" || m.ClientAddr != "192.0.2.1:25" || !m.Received.Equal(c.Now()) || !m.Done.IsZero() {
		t.Errorf("message = %+v", m)
	}
	wantRcpts := []struct{ addr, domain string }{
		{"A@Example.COM", "example.com"},
		{`"odd@local"@Sub.Example.net`, "sub.example.net"},
	}
	if len(m.Recipients) != len(wantRcpts) {
		t.Fatalf("recipients = %+v", m.Recipients)
	}
	for i, w := range wantRcpts {
		r := m.Recipients[i]
		if r.Addr != w.addr || r.Domain != w.domain || r.State != StateQueued || !r.NextAttempt.Equal(c.Now()) {
			t.Errorf("rcpt %d = %+v", i, r)
		}
	}
	got, err := bodyOf(q, id)
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("Body = %d bytes, %v", len(got), err)
	}
	for _, bad := range []string{"", "nope", strings.Repeat("Z", idLen), "0000000000000000"} {
		if _, err := q.Get(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", bad, err)
		}
		if _, err := bodyOf(q, bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("Body(%q) = %v, want ErrNotFound", bad, err)
		}
	}
	empty, err := q.Enqueue(context.Background(), NewMessage{Rcpts: []string{"e@x.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := bodyOf(q, empty); err != nil || len(got) != 0 {
		t.Errorf("Body(empty) = %q, %v", got, err)
	}
	if _, err := q.Enqueue(context.Background(), NewMessage{From: "a@b"}); err == nil {
		t.Error("Enqueue without recipients succeeded")
	}
	checkInvariants(t, q)
}

func TestIDsUniqueAndSorted(t *testing.T) {
	t.Parallel()
	g := newIDGen()
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	var prev string
	for i := 0; i < 5000; i++ {
		id := g.next(base.Add(time.Duration(i/10) * time.Millisecond))
		if !validID(id) || seen[id] {
			t.Fatalf("id %q invalid or duplicate", id)
		}
		seen[id] = true
		if id[:9] < prev {
			t.Fatalf("time prefix went back: %q after %q", id[:9], prev)
		}
		prev = id[:9]
	}
}

func TestLeaseOrderAndMax(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	t0 := c.Now()
	// Five recipients deferred to shuffled times.
	offsets := []time.Duration{40, 10, 30, 50, 20}
	var ids []string
	for range offsets {
		ids = append(ids, enqueue(t, q, "r@d.test"))
	}
	items, err := q.Lease(t0, 10)
	if err != nil || len(items) != 5 {
		t.Fatalf("initial lease = %d, %v", len(items), err)
	}
	for i, id := range ids {
		update(t, q, Update{ID: id, Rcpt: 0, State: StateQueued, NextAttempt: t0.Add(offsets[i] * time.Minute)})
	}
	tests := []struct {
		name string
		now  time.Duration
		max  int
		want []time.Duration
	}{
		{"nothing due yet", 5, 10, nil},
		{"max bounds", 60, 2, []time.Duration{10, 20}},
		{"only due ones", 35, 10, []time.Duration{30}},
		{"due at exactly now", 40, 10, []time.Duration{40}},
		{"rest", 60, 10, []time.Duration{50}},
		{"empty", 600, 10, nil},
	}
	for _, tt := range tests {
		items, err := q.Lease(t0.Add(tt.now*time.Minute), tt.max)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var got []time.Duration
		for _, it := range items {
			got = append(got, it.NextAttempt.Sub(t0)/time.Minute)
			if it.From != "sender@example.org" || it.Domain != "d.test" || it.Attempts != 0 {
				t.Errorf("%s: item %+v", tt.name, it)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: leased %v, want %v", tt.name, got, tt.want)
		}
	}
	checkInvariants(t, q)
	cnt, _ := q.Counts()
	if cnt[StateActive] != 5 || cnt[StateQueued] != 0 {
		t.Errorf("counts = %v", cnt)
	}
	if items, err := q.Lease(t0, 0); err != nil || items != nil {
		t.Errorf("Lease(max=0) = %v, %v", items, err)
	}
}

func TestDeferThenLeaseLater(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	id := enqueue(t, q, "a@x.test", "b@y.test")
	if at, ok, err := q.NextDue(); err != nil || !ok || !at.Equal(c.Now()) {
		t.Fatalf("NextDue = %v %v %v", at, ok, err)
	}
	items, err := q.Lease(c.Now(), 10)
	if err != nil || len(items) != 2 {
		t.Fatalf("Lease = %v, %v", items, err)
	}
	if _, ok, _ := q.NextDue(); ok {
		t.Fatal("due index not empty after lease")
	}
	retry := c.Now().Add(15 * time.Minute)
	att := &Attempt{At: c.Now(), Relay: "mx.x.test", Reply: "451 4.7.1 greylisted", Class: "greylist", Status: "4.7.1"}
	update(t, q,
		Update{ID: id, Rcpt: 0, State: StateQueued, NextAttempt: retry, Attempt: att},
		Update{ID: id, Rcpt: 1, State: StateSent, Attempt: &Attempt{At: c.Now(), Reply: "250 ok", Class: "ok"}})
	if at, ok, _ := q.NextDue(); !ok || !at.Equal(retry) {
		t.Fatalf("NextDue = %v %v, want %v", at, ok, retry)
	}
	if items, _ := q.Lease(c.Advance(14*time.Minute), 10); len(items) != 0 {
		t.Fatalf("leased before due: %v", items)
	}
	items, err = q.Lease(c.Advance(time.Minute), 10)
	if err != nil || len(items) != 1 || items[0].Rcpt != 0 || items[0].Attempts != 1 {
		t.Fatalf("second lease = %+v, %v", items, err)
	}
	m, _ := q.Get(id)
	r := m.Recipients[0]
	if r.State != StateActive || r.Attempts != 1 || r.LastReply != att.Reply || r.LastClass != "greylist" ||
		len(r.History) != 1 || r.History[0].Relay != "mx.x.test" || r.History[0].Status != "4.7.1" {
		t.Errorf("recipient = %+v", r)
	}
	if m.Recipients[1].State != StateSent || !m.Done.IsZero() {
		t.Errorf("message = %+v", m)
	}
	checkInvariants(t, q)
}

func TestCompleteSetsDoneAndPrune(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, func(o *Options) { o.Retention = 24 * time.Hour })
	id := enqueue(t, q, "a@x.test", "b@x.test", "c@x.test")
	keep := enqueue(t, q, "k@x.test")
	if _, err := q.Lease(c.Now(), 10); err != nil {
		t.Fatal(err)
	}
	update(t, q, Update{ID: id, Rcpt: 0, State: StateSent}, Update{ID: id, Rcpt: 1, State: StateBounced})
	if m, _ := q.Get(id); !m.Done.IsZero() {
		t.Fatal("Done set while a recipient is open")
	}
	doneAt := c.Advance(time.Hour)
	update(t, q, Update{ID: id, Rcpt: 2, State: StateExpired})
	m, _ := q.Get(id)
	if !m.Done.Equal(doneAt) {
		t.Fatalf("Done = %v, want %v", m.Done, doneAt)
	}
	checkInvariants(t, q)
	commits := q.Commits()
	if n, err := q.Prune(doneAt.Add(23 * time.Hour)); err != nil || n != 0 {
		t.Fatalf("early Prune = %d, %v", n, err)
	}
	if q.Commits() != commits {
		t.Error("a Prune with nothing to prune committed (an fsync for nothing)")
	}
	if n, err := q.Prune(doneAt.Add(25 * time.Hour)); err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v", n, err)
	}
	if _, err := q.Get(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after prune = %v", err)
	}
	if _, err := bodyOf(q, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Body after prune = %v", err)
	}
	if _, err := q.Get(keep); err != nil {
		t.Errorf("open message pruned: %v", err)
	}
	cnt, _ := q.Counts()
	if cnt[StateSent]+cnt[StateBounced]+cnt[StateExpired] != 0 || cnt[StateActive] != 1 {
		t.Errorf("counts after prune = %v", cnt)
	}
	checkInvariants(t, q)
}

func TestPruneManyBatches(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, func(o *Options) { o.Retention = time.Hour; o.NoSync = true })
	const n = pruneBatch + 7
	var ups []Update
	for i := 0; i < n; i++ {
		ups = append(ups, Update{ID: enqueue(t, q, "a@x.test"), State: StateSent})
	}
	update(t, q, ups...)
	got, err := q.Prune(c.Now().Add(2 * time.Hour))
	if err != nil || got != n {
		t.Fatalf("Prune = %d, %v; want %d", got, err, n)
	}
	checkInvariants(t, q)
}

func TestUpdateRules(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	ctx := context.Background()
	id := enqueue(t, q, "a@x.test", "b@x.test", "c@x.test")
	_, _ = q.Lease(c.Now(), 10)
	if _, err := q.Delete([]string{id}); err != nil {
		t.Fatal(err)
	}
	// A worker finishing a lease after the operator deleted it: the
	// attempt is recorded, the state stays deleted.
	update(t, q, Update{ID: id, Rcpt: 0, State: StateSent, Attempt: &Attempt{Reply: "250 ok"}})
	m, _ := q.Get(id)
	if r := m.Recipients[0]; r.State != StateDeleted || r.Attempts != 1 {
		t.Errorf("deleted recipient after update = %+v", r)
	}

	id2 := enqueue(t, q, "a@x.test", "b@x.test")
	_, _ = q.Lease(c.Now(), 10)
	if _, err := q.Hold([]string{id2}); err != nil {
		t.Fatal(err)
	}
	update(t, q,
		Update{ID: id2, Rcpt: 0, State: StateQueued, NextAttempt: c.Now().Add(time.Hour)},
		Update{ID: id2, Rcpt: 1, State: StateSent})
	m, _ = q.Get(id2)
	if m.Recipients[0].State != StateHeld || m.Recipients[1].State != StateSent {
		t.Errorf("held recipients after update = %+v", m.Recipients)
	}

	bad := []struct {
		name string
		up   Update
		want error
	}{
		{"unknown id", Update{ID: "0000000000000000", State: StateSent}, ErrNotFound},
		{"bad rcpt index", Update{ID: id2, Rcpt: 9, State: StateSent}, ErrNotFound},
		{"negative rcpt", Update{ID: id2, Rcpt: -1, State: StateSent}, ErrNotFound},
		{"state held not allowed", Update{ID: id2, State: StateHeld}, nil},
		{"state active not allowed", Update{ID: id2, State: StateActive}, nil},
	}
	for _, tt := range bad {
		err := q.Update(ctx, []Update{tt.up})
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
	// All or nothing: a bad update leaves the good one in the same call
	// unapplied.
	id3 := enqueue(t, q, "z@x.test")
	if err := q.Update(ctx, []Update{{ID: id3, State: StateSent}, {ID: id3, Rcpt: 5, State: StateSent}}); err == nil {
		t.Fatal("bad update accepted")
	}
	if m, _ := q.Get(id3); m.Recipients[0].State != StateQueued {
		t.Errorf("partial update applied: %+v", m.Recipients[0])
	}
	checkInvariants(t, q)
}

func TestLeasesReturnAfterReopen(t *testing.T) {
	t.Parallel()
	c := newClock()
	o := testOptions(filepath.Join(t.TempDir(), "q.db"))
	o.Now = c.Now
	q, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	id := enqueue(t, q, "a@x.test", "b@y.test")
	held := enqueue(t, q, "h@x.test")
	items, err := q.Lease(c.Now(), 10)
	if err != nil || len(items) != 3 {
		t.Fatalf("Lease = %v %v", items, err)
	}
	if _, err := q.Hold([]string{held}); err != nil {
		t.Fatal(err)
	}
	// Simulated crash: the deliveries never report back.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	restart := c.Advance(time.Hour)
	q, err = Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	at, ok, err := q.NextDue()
	if err != nil || !ok || !at.Equal(restart) {
		t.Fatalf("NextDue after reopen = %v %v %v, want %v", at, ok, err, restart)
	}
	items, err = q.Lease(restart, 10)
	if err != nil || len(items) != 2 || items[0].ID != id {
		t.Fatalf("Lease after reopen = %+v %v", items, err)
	}
	if m, _ := q.Get(held); m.Recipients[0].State != StateHeld {
		t.Errorf("held recipient changed on reopen: %+v", m.Recipients[0])
	}
	checkInvariants(t, q)
}

func TestHoldReleaseDeleteFlush(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	t0 := c.Now()
	a := enqueue(t, q, "1@a.test", "2@b.test")
	b := enqueue(t, q, "3@A.TEST")
	d := enqueue(t, q, "4@b.test")
	_, _ = q.Lease(t0, 10)
	later := t0.Add(time.Hour)
	update(t, q,
		Update{ID: a, Rcpt: 0, State: StateQueued, NextAttempt: later},
		Update{ID: a, Rcpt: 1, State: StateQueued, NextAttempt: later},
		Update{ID: b, Rcpt: 0, State: StateQueued, NextAttempt: later},
		Update{ID: d, Rcpt: 0, State: StateQueued, NextAttempt: later})

	steps := []struct {
		name string
		do   func() (int, error)
		want int
	}{
		{"hold a and unknown", func() (int, error) { return q.Hold([]string{a, "0000000000000000", "junk"}) }, 1},
		{"hold a again", func() (int, error) { return q.Hold([]string{a}) }, 0},
		{"flush a.test", func() (int, error) { return q.Flush(context.Background(), "A.test", nil) }, 1},
		{"flush all", func() (int, error) { return q.Flush(context.Background(), "", nil) }, 1},
		{"flush again", func() (int, error) { return q.Flush(context.Background(), "", nil) }, 0},
		{"release a", func() (int, error) { return q.Release([]string{a}) }, 1},
		{"release b (not held)", func() (int, error) { return q.Release([]string{b}) }, 0},
		{"delete d", func() (int, error) { return q.Delete([]string{d}) }, 1},
		{"delete d again", func() (int, error) { return q.Delete([]string{d}) }, 0},
	}
	for _, s := range steps {
		n, err := s.do()
		if err != nil || n != s.want {
			t.Fatalf("%s = %d, %v; want %d", s.name, n, err, s.want)
		}
		checkInvariants(t, q)
	}
	// Everything open is now due at t0 (flush/release use the clock).
	items, err := q.Lease(t0, 10)
	if err != nil || len(items) != 3 {
		t.Fatalf("Lease = %+v %v", items, err)
	}
	last, _ := q.LastID()
	ids, err := q.DomainIDs("B.test", "", last, 10)
	if err != nil || !slices.Equal(ids, []string{a}) {
		t.Errorf("DomainIDs(b.test) = %v %v", ids, err)
	}
	m, _ := q.Get(d)
	if m.Done.IsZero() || m.Recipients[0].State != StateDeleted {
		t.Errorf("deleted message = %+v", m)
	}
	cnt, _ := q.Counts()
	want := map[State]int{StateQueued: 0, StateActive: 3, StateHeld: 0, StateSent: 0, StateBounced: 0, StateExpired: 0, StateDeleted: 1}
	for s, n := range want {
		if cnt[s] != n {
			t.Errorf("Counts[%s] = %d, want %d", s, cnt[s], n)
		}
	}
}

func TestListAndOldest(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	if _, ok, err := q.Oldest(); ok || err != nil {
		t.Fatalf("Oldest on empty = %v %v", ok, err)
	}
	first := enqueue(t, q, "a@x.test")
	t1 := c.Now()
	c.Advance(time.Hour)
	second := enqueue(t, q, "b@y.test", "c@x.test")
	c.Advance(time.Hour)
	third := enqueue(t, q, "d@y.test")
	update(t, q, Update{ID: first, State: StateSent})
	if _, err := q.Hold([]string{third}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    Filter
		want []string
	}{
		{"all", Filter{}, []string{first, second, third}},
		{"domain", Filter{Domain: "X.test"}, []string{first, second}},
		{"state held", Filter{State: StateHeld}, []string{third}},
		{"state sent at x", Filter{Domain: "x.test", State: StateSent}, []string{first}},
		{"older than 90m", Filter{OlderThan: 90 * time.Minute}, []string{first}},
		{"limit", Filter{Limit: 2}, []string{first, second}},
		{"no match", Filter{Domain: "nope.test"}, nil},
	}
	for _, tt := range tests {
		ms, err := q.List(tt.f)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.ID)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: List = %v, want %v", tt.name, got, tt.want)
		}
	}
	// first is done, so the oldest open one is second.
	at, ok, err := q.Oldest()
	if err != nil || !ok || !at.Equal(t1.Add(time.Hour)) {
		t.Errorf("Oldest = %v %v %v", at, ok, err)
	}
}

func TestErrLocked(t *testing.T) {
	t.Parallel()
	q, _, o := openTest(t, nil)
	_, err := Open(o)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	want := "queue file " + o.Path + " is locked: is another sluice serve running on this data_dir?"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error text %q lacks %q", err, want)
	}
	if err := Compact(o.Path); !errors.Is(err, ErrLocked) {
		t.Errorf("Compact while open = %v, want ErrLocked", err)
	}
	_ = q
}

func TestMinFreeBytes(t *testing.T) {
	t.Parallel()
	q, c, o := openTest(t, nil)
	id := enqueue(t, q, "a@x.test")
	if _, err := q.Lease(c.Now(), 1); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	o.MinFreeBytes = 1 << 62
	q, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	_, err = q.Enqueue(context.Background(), NewMessage{Rcpts: []string{"b@x.test"}, Body: []byte("x")})
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Enqueue below reserve = %v, want ErrNoSpace", err)
	}
	// Bookkeeping of mail already queued goes on.
	update(t, q, Update{ID: id, State: StateSent, Attempt: &Attempt{Reply: "250 ok"}})
	if m, _ := q.Get(id); m.Recipients[0].State != StateSent {
		t.Errorf("Update below reserve not applied: %+v", m.Recipients[0])
	}
	if err := q.Suppress("x@y.test", "test"); err != nil {
		t.Errorf("Suppress below reserve: %v", err)
	}
	checkInvariants(t, q)
}

func TestSuppressionPersists(t *testing.T) {
	t.Parallel()
	q, _, o := openTest(t, nil)
	if err := q.Suppress("Bob@Example.COM", "5.1.1 user unknown"); err != nil {
		t.Fatal(err)
	}
	if err := q.Suppress("gone@example.com", "complaint"); err != nil {
		t.Fatal(err)
	}
	if err := q.Suppress("  ", ""); err == nil {
		t.Error("empty address suppressed")
	}
	if !q.IsSuppressed("bob@example.com") || q.IsSuppressed("alice@example.com") {
		t.Fatal("IsSuppressed wrong before reopen")
	}
	if ok, err := q.Unsuppress("GONE@example.com"); !ok || err != nil {
		t.Fatalf("Unsuppress = %v %v", ok, err)
	}
	if ok, err := q.Unsuppress("never@example.com"); ok || err != nil {
		t.Fatalf("Unsuppress(absent) = %v %v", ok, err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if !q.IsSuppressed("BOB@example.com") || q.IsSuppressed("gone@example.com") {
		t.Error("IsSuppressed wrong after reopen")
	}
	list, err := q.Suppressions()
	if err != nil || len(list) != 1 || list[0].Addr != "Bob@Example.COM" || list[0].Reason != "5.1.1 user unknown" || list[0].At.IsZero() {
		t.Errorf("Suppressions = %+v %v", list, err)
	}
}

func TestDestinationsPersist(t *testing.T) {
	t.Parallel()
	q, _, o := openTest(t, nil)
	states := map[string][]byte{"gmail": []byte(`{"max":5}`), "example.net": {0, 1, 2}, "empty": nil}
	for k, v := range states {
		if err := q.SaveDestination(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.SaveDestination("", []byte("x")); err == nil {
		t.Error("empty destination name accepted")
	}
	if err := q.DeleteDestination("example.net"); err != nil {
		t.Fatal(err)
	}
	_ = q.Close()
	q, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	got, err := q.LoadDestinations()
	if err != nil || len(got) != 2 || string(got["gmail"]) != `{"max":5}` || got["empty"] == nil || len(got["empty"]) != 0 {
		t.Errorf("LoadDestinations = %q %v", got, err)
	}
	for name, want := range map[string][]byte{"gmail": []byte(`{"max":5}`), "empty": {}, "example.net": nil, "never": nil} {
		got, err := q.LoadDestination(name)
		if err != nil || (got == nil) != (want == nil) || string(got) != string(want) {
			t.Errorf("LoadDestination(%q) = %q %v, want %q", name, got, err, want)
		}
	}
}

func TestCompactKeepsData(t *testing.T) {
	t.Parallel()
	q, c, o := openTest(t, func(o *Options) { o.NoSync = true })
	var ids []string
	for i := 0; i < 300; i++ {
		ids = append(ids, enqueue(t, q, "a@x.test"))
	}
	if _, err := q.Delete(ids[:250]); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Prune(c.Now().Add(30 * 24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := q.Suppress("s@x.test", "r"); err != nil {
		t.Fatal(err)
	}
	_ = q.Close()
	before, _ := os.Stat(o.Path)
	if err := Compact(o.Path); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	after, _ := os.Stat(o.Path)
	if after.Size() > before.Size() {
		t.Errorf("file grew: %d -> %d", before.Size(), after.Size())
	}
	if _, err := os.Stat(o.Path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary copy left behind: %v", err)
	}
	q, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for _, id := range ids[250:] {
		if _, err := bodyOf(q, id); err != nil {
			t.Fatalf("Body(%s) after compact: %v", id, err)
		}
	}
	if !q.IsSuppressed("s@x.test") {
		t.Error("suppression lost by compact")
	}
	checkInvariants(t, q)
	if err := Compact(filepath.Join(t.TempDir(), "missing.db")); err == nil {
		t.Error("Compact of a missing file succeeded")
	}
}

func TestClosedQueue(t *testing.T) {
	t.Parallel()
	q, _, _ := openTest(t, nil)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := q.Enqueue(context.Background(), NewMessage{Rcpts: []string{"a@b"}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close = %v", err)
	}
	if _, err := q.Counts(); !errors.Is(err, ErrClosed) {
		t.Errorf("Counts after Close = %v", err)
	}
}

func TestContextCanceled(t *testing.T) {
	t.Parallel()
	q, _, _ := openTest(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := q.Enqueue(ctx, NewMessage{Rcpts: []string{"a@b"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Enqueue with canceled ctx = %v", err)
	}
}
