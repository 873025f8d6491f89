package queue

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// TestPingWritesNothing: the watchdog's ping is answered by the commit
// goroutine without a transaction, alone or among writes, and fails once
// the queue is closed.
func TestPingWritesNothing(t *testing.T) {
	t.Parallel()
	q, _, _ := openTest(t, nil)
	ctx := context.Background()
	before := q.Commits()
	for range 3 {
		if err := q.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := q.Commits() - before; n != 0 {
		t.Fatalf("%d commits for three pings", n)
	}
	// Pings mixed into group commits: each write still commits, each
	// ping is answered.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				enqueue(t, q, "a@example.test")
			} else if err := q.Ping(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	checkInvariants(t, q)
	q.Close()
	if err := q.Ping(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("ping after Close: %v", err)
	}
}
