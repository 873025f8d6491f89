package queue

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestENOSPCRecovery fills a real, small file system and checks that
// Enqueue fails with ErrNoSpace, that nothing half-written remains, and
// that the queue works again once space returns. It needs a dedicated
// small mount (e.g. `mount -t tmpfs -o size=2m tmpfs /mnt/small`) named
// by SLUICE_TEST_SMALLFS, since a test must not mount file systems.
func TestENOSPCRecovery(t *testing.T) {
	dir := os.Getenv("SLUICE_TEST_SMALLFS")
	if dir == "" {
		t.Skip("set SLUICE_TEST_SMALLFS to a small scratch file system to run")
	}
	dir, err := os.MkdirTemp(dir, "queue")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	c := newClock()
	o := testOptions(filepath.Join(dir, "queue.db"))
	o.Now = c.Now
	q, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	body := make([]byte, 16<<10)
	var stored []string
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatal("never ran out of space")
		}
		id, err := q.Enqueue(ctx, NewMessage{Rcpts: []string{"a@x.test"}, Body: body})
		if errors.Is(err, ErrNoSpace) {
			t.Logf("ErrNoSpace after %d messages: %v", i, err)
			break
		}
		if err != nil {
			t.Fatalf("Enqueue %d: %v", i, err)
		}
		stored = append(stored, id)
	}
	// Every acknowledged message is intact, and bookkeeping is consistent.
	for _, id := range stored {
		if _, err := bodyOf(q, id); err != nil {
			t.Fatalf("Body(%s): %v", id, err)
		}
	}
	checkInvariants(t, q)
	// Free space by finishing and pruning most messages; bbolt reuses
	// freed pages, so Enqueue succeeds again without growing the file.
	var ups []Update
	for _, id := range stored {
		ups = append(ups, Update{ID: id, State: StateSent})
	}
	for len(ups) > 0 {
		n := min(len(ups), 50)
		if err := q.Update(ctx, ups[:n]); err != nil {
			t.Fatalf("Update after ENOSPC: %v", err)
		}
		ups = ups[n:]
	}
	if _, err := q.Prune(c.Advance(30 * 24 * time.Hour)); err != nil {
		t.Fatalf("Prune after ENOSPC: %v", err)
	}
	for i := 0; i < 20; i++ {
		if _, err := q.Enqueue(ctx, NewMessage{Rcpts: []string{"a@x.test"}, Body: body}); err != nil {
			t.Fatalf("Enqueue after space returned: %v", err)
		}
	}
	checkInvariants(t, q)
}
