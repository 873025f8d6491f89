package scheduler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"sluice/internal/fakemx"
	"sluice/queue"
)

// TestAttemptMarksFirstOfTransaction: OnAttempt reports every recipient,
// and marks the first of each transaction, so that a counter of marked
// attempts counts transactions, which is what the rate limit meters
// (one Reserve per message sent): the dashboard's rate in use.
func TestAttemptMarksFirstOfTransaction(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []Attempt
	h := newHarnessWith(t, fakemx.Options{}, nil, func(o *Options) {
		o.OnAttempt = func(a Attempt) { mu.Lock(); got = append(got, a); mu.Unlock() }
	})
	const msgs, rcpts = 4, 3
	for i := range msgs {
		var to []string
		for j := range rcpts {
			to = append(to, fmt.Sprintf("u%d.%d@dest.test", i, j))
		}
		body := fmt.Sprintf("From: <a@src.test>\r\nSubject: %d\r\nMessage-ID: <f%d@sluice.test>\r\n\r\nhi\r\n", i, i)
		if _, err := h.q.Enqueue(context.Background(), queue.NewMessage{From: "a@src.test", Rcpts: to, Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	h.sched.Kick()
	h.waitDelivered(msgs, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= msgs*rcpts || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	first := 0
	for _, a := range got {
		if a.First {
			first++
		}
		if a.Status != "sent" || a.Dest == "" {
			t.Errorf("attempt %+v", a)
		}
	}
	if len(got) != msgs*rcpts || first != msgs {
		t.Fatalf("%d attempts, %d marked first; want %d and %d", len(got), first, msgs*rcpts, msgs)
	}
}
