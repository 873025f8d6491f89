package queue

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestBounceChecksWhereItChanges (issue 9 item 23): Bounce fails only
// the recipients that are queued or held inside its own transaction,
// queues the DSN in that same commit, and records nothing when the DSN
// cannot be built.
func TestBounceChecksWhereItChanges(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	id := enqueue(t, q, "queued@x.test", "held@y.test", "active@z.test", "sent@w.test")
	// sent@w.test is delivered, active@z.test is in flight, held@y.test
	// is held: only the held and queued ones may bounce.
	items, err := q.Lease(c.Now(), 10)
	if err != nil || len(items) != 4 {
		t.Fatalf("Lease = %v, %v", items, err)
	}
	update(t, q,
		Update{ID: id, Rcpt: 0, State: StateQueued, NextAttempt: c.Now().Add(time.Hour)},
		Update{ID: id, Rcpt: 1, State: StateQueued, NextAttempt: c.Now().Add(time.Hour)},
		Update{ID: id, Rcpt: 3, State: StateSent})
	err = q.write(context.Background(), func(w *wtx) error {
		r, err := w.rcpt(id, 1)
		if err != nil {
			return err
		}
		return w.transition(id, 1, r, StateHeld, time.Time{})
	}, nil)
	if err != nil {
		t.Fatal(err)
	}

	// A DSN that cannot be built: nothing is recorded.
	boom := errors.New("boom")
	if _, err := q.Bounce([]string{id}, Attempt{Reply: "op"}, func(*Message, []int) (*NewMessage, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("Bounce with a failing DSN = %v", err)
	}
	if m, _ := q.Get(id); m.Recipients[0].State != StateQueued || m.Recipients[1].State != StateHeld {
		t.Fatalf("a failed bounce changed states: %+v", m.Recipients)
	}

	before := q.Commits()
	var seen []int
	n, err := q.Bounce([]string{id, "0000000000000000", "bad"}, Attempt{Reply: "op", Class: "operator"}, func(m *Message, failed []int) (*NewMessage, error) {
		seen = failed
		return &NewMessage{Rcpts: []string{m.From}, Body: []byte("Subject: dsn\r\n\r\nx\r\n")}, nil
	})
	if err != nil || n != 1 {
		t.Fatalf("Bounce = %d, %v", n, err)
	}
	if !slices.Equal(seen, []int{0, 1}) {
		t.Errorf("DSN built for recipients %v, want [0 1]", seen)
	}
	if got := q.Commits() - before; got != 1 {
		t.Errorf("%d commits, want one for the bounce and its DSN", got)
	}
	m, _ := q.Get(id)
	want := []State{StateBounced, StateBounced, StateActive, StateSent}
	for i, r := range m.Recipients {
		if r.State != want[i] {
			t.Errorf("%s: %s, want %s", r.Addr, r.State, want[i])
		}
	}
	if h := m.Recipients[0].History; len(h) == 0 || h[len(h)-1].Class != "operator" || h[len(h)-1].At.IsZero() {
		t.Errorf("bounce not in history: %+v", h)
	}
	if dsns, _ := q.List(Filter{Domain: "example.org"}); len(dsns) != 1 {
		t.Errorf("%d DSNs queued, want 1", len(dsns))
	}
	// Nothing left to bounce: no DSN, no change.
	if n, err := q.Bounce([]string{id}, Attempt{}, func(*Message, []int) (*NewMessage, error) {
		t.Error("DSN built with nothing to bounce")
		return nil, nil
	}); n != 0 || err != nil {
		t.Errorf("second Bounce = %d, %v", n, err)
	}
	checkInvariants(t, q)
}
