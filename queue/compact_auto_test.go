package queue

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestNeedsCompactionAfterDrain(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := Open(testOptions(path))
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 64<<10)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	var ids []string
	for range 200 {
		id, err := q.Enqueue(context.Background(), NewMessage{From: "a@src.test", Rcpts: []string{"b@dest.test"}, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := q.Delete(ids); err != nil {
		t.Fatal(err)
	}
	// Prune far in the future removes the finished records and bodies.
	if _, err := q.Prune(q.now().Add(365 * 24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	q.Close()

	if ok, err := NeedsCompaction(path, 1<<40, 0.5); err != nil || ok {
		t.Fatalf("below minSize: ok=%v err=%v", ok, err)
	}
	ok, err := NeedsCompaction(path, 1<<20, 0.5)
	if err != nil || !ok {
		t.Fatalf("drained file: ok=%v err=%v, want true", ok, err)
	}
	if err := Compact(path); err != nil {
		t.Fatal(err)
	}
	if ok, err := NeedsCompaction(path, 1<<20, 0.5); err != nil || ok {
		t.Fatalf("after compaction: ok=%v err=%v, want false", ok, err)
	}
}
