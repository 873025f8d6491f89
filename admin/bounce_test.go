package admin

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"sluice/queue"
)

// deliverDuringRead is the queue with a delivery slipped in: just after
// the operator bounce first reads a body, the scheduler leases the
// message's recipient and records it as delivered, as a session that
// got its 250 at that moment would.
type deliverDuringRead struct {
	*queue.Queue
	f    *fixture
	t    *testing.T
	once sync.Once
}

func (d *deliverDuringRead) OpenBody(id string) (*queue.Body, error) {
	body, err := d.Queue.OpenBody(id)
	d.once.Do(func() {
		items, err := d.Queue.Lease(d.f.clk.Now(), 10)
		if err != nil || len(items) != 1 {
			d.t.Errorf("lease: %v %+v", err, items)
			return
		}
		it := items[0]
		err = d.Queue.Update(context.Background(), []queue.Update{{ID: it.ID, Rcpt: it.Rcpt, State: queue.StateSent,
			Attempt: &queue.Attempt{At: d.f.clk.Now(), Reply: "250 2.0.0 ok", Status: "sent"}}})
		if err != nil {
			d.t.Errorf("record delivery: %v", err)
		}
	})
	return body, err
}

// TestBounceRacesDelivery (issue 9 item 23): a recipient delivered
// between the operator's look at the queue and the bounce stays sent,
// and the sender gets no DSN for it.
func TestBounceRacesDelivery(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.enqueue(t, "a@src.test", "b@dest.test")
	f.srv.bq = &deliverDuringRead{Queue: f.q, f: f, t: t}

	res, err := f.client.Act(ctx(), "bounce", Selection{IDs: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed != 0 {
		t.Errorf("bounce changed %d messages, want 0 (the recipient was delivered)", res.Changed)
	}
	if got := rcptState(t, f.q, "b@dest.test"); got != "sent" {
		t.Errorf("delivered recipient is %s, want sent", got)
	}
	m, err := f.q.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range m.Recipients[0].History {
		if a.Class == "operator" {
			t.Errorf("an operator bounce was recorded for a delivered recipient: %+v", a)
		}
	}
	dsns, err := f.q.List(queue.Filter{Domain: "src.test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(dsns) != 0 {
		t.Errorf("the sender got %d DSNs for a delivered message", len(dsns))
	}
}

// TestReadOriginal: the operator bounce reads all of a small original and
// only the header section of a large one (dsn.ReadOriginal does the
// cutting; its own test covers the edge cases).
func TestReadOriginal(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	big := strings.Repeat("body line\r\n", 10000)
	tests := []struct{ name, body, want string }{
		{"small: whole", "Subject: a\r\nX: b\r\n\r\nbody\r\n\r\nmore\r\n", "Subject: a\r\nX: b\r\n\r\nbody\r\n\r\nmore\r\n"},
		{"headers only", "Subject: a\r\nX: b\r\n", "Subject: a\r\nX: b\r\n"},
		{"large: headers", "Subject: a\r\nX: b\r\n\r\n" + big, "Subject: a\r\nX: b\r\n\r\n"},
	}
	for _, tt := range tests {
		id, err := f.q.Enqueue(ctx(), queue.NewMessage{From: "a@src.test", Rcpts: []string{"b@dest.test"}, Body: []byte(tt.body)})
		if err != nil {
			t.Fatal(err)
		}
		got, err := readOriginal(f.q, id)
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	if _, err := readOriginal(f.q, "0000000000000000"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("unknown ID: %v", err)
	}
}

// TestForcedFlushReturnsOrphanLeases (issue 9 item 2): `flush --force`
// returns at once the leases no delivery holds (an outcome whose write
// was lost), and leaves the ones a delivery still uses.
func TestForcedFlushReturnsOrphanLeases(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	orphan := f.enqueue(t, "a@src.test", "b@dest.test")
	inUse := f.enqueue(t, "a@src.test", "c@dest.test")
	if items, err := f.q.Lease(f.clk.Now(), 10); err != nil || len(items) != 2 {
		t.Fatalf("lease: %v %d", err, len(items))
	}
	f.srv.o.Held = func(id string, _ int) bool { return id == inUse }
	res, err := f.client.Flush(ctx(), FlushRequest{Force: true})
	if err != nil || res.Changed != 1 {
		t.Fatalf("flush --force = %+v, %v; want 1 lease returned", res, err)
	}
	for id, want := range map[string]queue.State{orphan: queue.StateQueued, inUse: queue.StateActive} {
		if m, _ := f.q.Get(id); m.Recipients[0].State != want {
			t.Errorf("%s: %s, want %s", m.Recipients[0].Addr, m.Recipients[0].State, want)
		}
	}
}
