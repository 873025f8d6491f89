package queue

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"sluice/internal/syncbuf"
)

func eventsOn(t testing.TB, q *Queue, sinks ...string) {
	t.Helper()
	if len(sinks) == 0 {
		sinks = []string{"test"}
	}
	if err := q.ConfigureEvents(EventsConfig{Sinks: sinks, MaxBytes: 1 << 30, Retention: 7 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
}

func allEvents(t testing.TB, q *Queue) []Event {
	t.Helper()
	evs, err := q.EventsAfter(0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func types(evs []Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.Type)
	}
	return strings.Join(s, ",")
}

// TestEventsStoredOnlyWithSink: with no sink configured nothing goes into
// the outbox, so the delivery path pays nothing for events.
func TestEventsStoredOnlyWithSink(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	id := enqueue(t, q, "a@x.test")
	update(t, q, Update{ID: id, Rcpt: 0, State: StateSent, Attempt: &Attempt{At: c.Now(), Reply: "250 ok"}})
	if evs := allEvents(t, q); len(evs) != 0 {
		t.Fatalf("events stored without a sink: %v", types(evs))
	}
	st, err := q.EventStats()
	if err != nil || st.On || st.Bytes != 0 {
		t.Fatalf("stats %+v %v", st, err)
	}
	eventsOn(t, q)
	enqueue(t, q, "b@x.test")
	if got := types(allEvents(t, q)); got != "accepted" {
		t.Fatalf("after a sink is configured: %q", got)
	}
	if err := q.ConfigureEvents(EventsConfig{}); err != nil {
		t.Fatal(err)
	}
	enqueue(t, q, "c@x.test")
	if got := types(allEvents(t, q)); got != "accepted" {
		t.Fatalf("after the sink is removed: %q", got)
	}
}

// TestEveryStateChangeIsAnEvent walks a message through every change and
// checks each event's fields and that IDs grow.
func TestEveryStateChangeIsAnEvent(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	eventsOn(t, q)
	id := enqueue(t, q, "a@x.test", "b@x.test", "c@x.test", "d@x.test")
	c.Advance(time.Minute)
	items, err := q.Lease(c.Now(), 10)
	if err != nil || len(items) != 4 {
		t.Fatalf("lease: %v %v", items, err)
	}
	next := c.Now().Add(10 * time.Minute)
	update(t, q,
		Update{ID: id, Rcpt: 0, State: StateSent, Attempt: &Attempt{At: c.Now(), Relay: "mx.x.test[127.0.0.1]:25", Reply: "250 2.0.0 ok", Class: "success"}, Detail: EventDetail{TLS: true}},
		Update{ID: id, Rcpt: 1, State: StateBounced, Attempt: &Attempt{At: c.Now(), Reply: "550 5.1.1 no such user", Class: "permanent"}, Detail: EventDetail{DSN: "5.1.1", Category: "user-unknown"}},
		Update{ID: id, Rcpt: 2, State: StateQueued, NextAttempt: next, Attempt: &Attempt{At: c.Now(), Reply: "451 4.7.1 greylisted", Class: "greylist"}, Detail: EventDetail{Category: "greylisted"}},
		Update{ID: id, Rcpt: 3, State: StateQueued, NextAttempt: c.Now()}, // a lease returned unused: no event
	)
	if _, err := q.Hold([]string{id}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Release([]string{id}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Delete([]string{id}); err != nil {
		t.Fatal(err)
	}
	if err := q.Suppress("z@x.test", "550 5.1.1 user unknown"); err != nil {
		t.Fatal(err)
	}
	evs := allEvents(t, q)
	want := "accepted,accepted,accepted,accepted,delivered,bounced,deferred,held,held,released,released,deleted,deleted,suppressed"
	if got := types(evs); got != want {
		t.Fatalf("events\n got %s\nwant %s", got, want)
	}
	for i, e := range evs {
		if i > 0 && e.ID <= evs[i-1].ID {
			t.Errorf("IDs do not grow: %s after %s", e.ID, evs[i-1].ID)
		}
		if seq, err := ParseEventID(e.ID); err != nil || seq != e.Seq() {
			t.Errorf("ID %s: %d %v", e.ID, seq, err)
		}
		if e.Type != EventSuppressed && (e.MessageID != id || e.Sender != "sender@example.org" || e.Rcpt == nil) {
			t.Errorf("%s: %+v", e.Type, e)
		}
	}
	d := evs[4]
	if d.Recipient != "a@x.test" || *d.Rcpt != 0 || d.TLS == nil || !*d.TLS || d.Relay != "mx.x.test[127.0.0.1]:25" || d.DelaySeconds != 60 || d.Attempts != 1 {
		t.Errorf("delivered: %+v", d)
	}
	b := evs[5]
	if b.Recipient != "b@x.test" || b.DSN != "5.1.1" || b.Category != "user-unknown" || b.Reply != "550 5.1.1 no such user" {
		t.Errorf("bounced: %+v", b)
	}
	df := evs[6]
	if !df.NextAttempt.Equal(next) || df.Class != "greylist" || df.Category != "greylisted" {
		t.Errorf("deferred: %+v", df)
	}
	if evs[7].Reason != "operator" || evs[13].Recipient != "z@x.test" || evs[13].Rcpt != nil || evs[13].Reason == "" {
		t.Errorf("held %+v, suppressed %+v", evs[7], evs[13])
	}
	checkInvariants(t, q)
}

// TestEventInSameTransaction: a change that fails to commit leaves no
// event (none invented), and events add no commit (no fsync) of their
// own.
func TestEventInSameTransaction(t *testing.T) {
	t.Parallel()
	q, _, _ := openTest(t, nil)
	eventsOn(t, q)
	boom := errors.New("boom")
	q.testHookCommit = func(string) error { return boom }
	if _, err := q.Enqueue(context.Background(), NewMessage{From: "s@x.test", Rcpts: []string{"a@x.test"}, Body: []byte("x")}); !errors.Is(err, boom) {
		t.Fatalf("enqueue: %v", err)
	}
	if evs := allEvents(t, q); len(evs) != 0 {
		t.Fatalf("an event without its change: %v", types(evs))
	}
	q.testHookCommit = nil
	before := q.Commits()
	enqueue(t, q, "a@x.test", "b@x.test")
	if n := q.Commits() - before; n != 1 {
		t.Fatalf("an enqueue with events took %d commits, want 1", n)
	}
	if got := types(allEvents(t, q)); got != "accepted,accepted" {
		t.Fatalf("%q", got)
	}
}

// TestEventCapDropsOldestCounted: an endpoint that never acknowledges
// fills the outbox to events.max_bytes; then the oldest undelivered
// events go, counted, with their ID range in the log and in EventStats.
// Events every sink already has are dropped first and are not counted.
func TestEventCapDropsOldestCounted(t *testing.T) {
	t.Parallel()
	var logs syncbuf.Buffer
	q, _, _ := openTest(t, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	if err := q.ConfigureEvents(EventsConfig{Sinks: []string{"dead"}, MaxBytes: 4000, Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		enqueue(t, q, "a@x.test")
	}
	st, err := q.EventStats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes > 4000 || st.Dropped == 0 || st.LastDrop == nil {
		t.Fatalf("stats %+v", st)
	}
	if st.Dropped+int64(st.Events) != 40 || q.EventsDropped() != st.Dropped {
		t.Fatalf("dropped %d + kept %d != 40 (since open %d)", st.Dropped, st.Events, q.EventsDropped())
	}
	evs := allEvents(t, q)
	if evs[0].Seq() != uint64(st.Dropped)+1 {
		t.Fatalf("oldest kept %s after %d dropped: not the oldest went", evs[0].ID, st.Dropped)
	}
	if !strings.Contains(logs.String(), "first="+EventID(1)) || !strings.Contains(logs.String(), "dropped") {
		t.Fatalf("no drop range logged:\n%s", logs.String())
	}
	// The dead sink's cursor now starts after the drop: no gap to wait on.
	cur, _ := q.EventCursor("dead")
	if cur < uint64(st.Dropped) {
		t.Fatalf("cursor %d inside the dropped range", cur)
	}
	// A sink that keeps up: trimming is silent.
	if err := q.AckEvents(context.Background(), "dead", evs[len(evs)-1].Seq()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		enqueue(t, q, "a@x.test")
		last := allEvents(t, q)
		if err := q.AckEvents(context.Background(), "dead", last[len(last)-1].Seq()); err != nil {
			t.Fatal(err)
		}
	}
	st2, _ := q.EventStats()
	if st2.Dropped != st.Dropped || st2.Bytes > 4000 {
		t.Fatalf("delivered events counted as drops: %d -> %d (bytes %d)", st.Dropped, st2.Dropped, st2.Bytes)
	}
}

// TestEventRetentionAndReplay: events stay while a sink lacks them and
// for the retention after; a rewind re-sends from a time with the same
// IDs.
func TestEventRetentionAndReplay(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	if err := q.ConfigureEvents(EventsConfig{Sinks: []string{"a", "b"}, MaxBytes: 1 << 30, Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	enqueue(t, q, "1@x.test")
	c.Advance(30 * time.Minute)
	mid := c.Now()
	enqueue(t, q, "2@x.test")
	c.Advance(2 * time.Hour)
	ctx := context.Background()
	if err := q.AckEvents(ctx, "a", 2); err != nil {
		t.Fatal(err)
	}
	if n, err := q.PruneEvents(100); err != nil || n != 0 {
		t.Fatalf("pruned %d (%v) while sink b lacks them", n, err)
	}
	if err := q.AckEvents(ctx, "b", 2); err != nil {
		t.Fatal(err)
	}
	first, n, err := q.RewindEvents([]string{"a"}, mid)
	if err != nil || first != EventID(2) || n != 1 {
		t.Fatalf("rewind: %s %d %v", first, n, err)
	}
	if cur, _ := q.EventCursor("a"); cur != 1 {
		t.Fatalf("cursor after rewind %d, want 1", cur)
	}
	if err := q.AckEvents(ctx, "a", 2); err != nil {
		t.Fatal(err)
	}
	if n, err := q.PruneEvents(100); err != nil || n != 2 {
		t.Fatalf("pruned %d (%v), want 2", n, err)
	}
	st, _ := q.EventStats()
	if st.Events != 0 || st.Bytes != 0 || st.LastID != EventID(2) {
		t.Fatalf("after prune: %+v", st)
	}
	// IDs never restart.
	enqueue(t, q, "3@x.test")
	if evs := allEvents(t, q); len(evs) != 1 || evs[0].ID != EventID(3) {
		t.Fatalf("%+v", evs)
	}
	// Every sink removed: nothing new is stored, and what is left goes
	// after the retention.
	if err := q.ConfigureEvents(EventsConfig{MaxBytes: 1 << 30, Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	enqueue(t, q, "4@x.test")
	c.Advance(2 * time.Hour)
	if n, err := q.PruneEvents(100); err != nil || n != 1 {
		t.Fatalf("pruned %d (%v) with no sink, want the 1 left", n, err)
	}
	if q.EventsOn() {
		t.Fatal("on without a sink")
	}
}

// TestEventsWaitWakes: a sink waiting for events is woken by the commit
// that writes them.
func TestEventsWaitWakes(t *testing.T) {
	t.Parallel()
	q, _, _ := openTest(t, nil)
	eventsOn(t, q)
	ch := q.EventsWait()
	enqueue(t, q, "a@x.test")
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("not woken")
	}
}
