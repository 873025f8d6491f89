package queue

import (
	"context"
	"testing"

	"sluice/dsn"
)

// TestDSNParametersPersisted (issue 13 item 5): the DSN parameters given
// at MAIL and RCPT are stored with the message, reach the delivery in
// the leased items, and the delay notice mark is kept once set, with a
// delayed event in the same transaction.
func TestDSNParametersPersisted(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	eventsOn(t, q)
	id, err := q.Enqueue(context.Background(), NewMessage{
		From: "s@example.org", Rcpts: []string{"a@x.test", "b@x.test"}, Body: []byte("Subject: x\r\n\r\nhi\r\n"),
		DSN:     dsn.Envelope{Ret: dsn.RetHdrs, EnvID: "env-1"},
		RcptDSN: []dsn.Rcpt{{Notify: dsn.NotifySuccess | dsn.NotifyDelay, ORcpt: "rfc822;orig@x.test"}, {}},
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := q.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if m.DSN != (dsn.Envelope{Ret: dsn.RetHdrs, EnvID: "env-1"}) || m.Recipients[0].DSN.Notify != dsn.NotifySuccess|dsn.NotifyDelay ||
		m.Recipients[0].DSN.ORcpt != "rfc822;orig@x.test" || m.Recipients[1].DSN != (dsn.Rcpt{}) {
		t.Fatalf("stored %+v", m)
	}
	items, err := q.Lease(c.Now(), 10)
	if err != nil || len(items) != 2 {
		t.Fatalf("lease %v %v", items, err)
	}
	if it := items[0]; it.Env.EnvID != "env-1" || it.Env.Ret != dsn.RetHdrs || it.RcptDSN.Notify != dsn.NotifySuccess|dsn.NotifyDelay || it.DelayWarned {
		t.Fatalf("item %+v", it)
	}
	att := &Attempt{At: c.Now(), Reply: "451 4.2.1 later", Class: "transient", Status: "deferred"}
	update(t, q, Update{ID: id, Rcpt: 0, State: StateQueued, NextAttempt: c.Now(), Attempt: att, DelayWarned: true},
		Update{ID: id, Rcpt: 1, State: StateQueued, NextAttempt: c.Now(), Attempt: att})
	items, err = q.Lease(c.Now(), 10)
	if err != nil || len(items) != 2 || !items[0].DelayWarned || items[1].DelayWarned {
		t.Fatalf("after the notice: %+v %v", items, err)
	}
	// A second mark writes no second event.
	update(t, q, Update{ID: id, Rcpt: 0, State: StateQueued, NextAttempt: c.Now(), Attempt: att, DelayWarned: true})
	n := 0
	for _, e := range allEvents(t, q) {
		if e.Type == EventDelayed {
			n++
			if e.Recipient != "a@x.test" || e.Reply != "451 4.2.1 later" {
				t.Errorf("delayed event %+v", e)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d delayed events, want 1", n)
	}
	checkInvariants(t, q)
}
