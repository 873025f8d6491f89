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

// TestUsageReadsConstantPages (issue 10, restart): the compaction check
// at start-up reads the same few pages whatever the number of queued
// messages; it used to walk every page of every bucket.
func TestUsageReadsConstantPages(t *testing.T) {
	t.Parallel()
	for _, n := range []int{10, 3000} {
		q, _, o := openTest(t, func(o *Options) { o.NoSync = true })
		body := make([]byte, 2048)
		for range n {
			if _, err := q.Enqueue(context.Background(), NewMessage{From: "a@src.test", Rcpts: []string{"b@dest.test"}, Body: body}); err != nil {
				t.Fatal(err)
			}
		}
		q.Close()
		rf, err := openRaw(o.Path, 0)
		if err != nil {
			t.Fatal(err)
		}
		u := rf.usage()
		reads := rf.reads
		rf.Close()
		if u.Live <= int64(n)*2048 || u.Live > u.Size {
			t.Errorf("%d messages: usage %+v", n, u)
		}
		// The meta and freelist pages, the root, a root per bucket and
		// the small buckets: a bound that does not depend on n.
		if reads > 2*len(allBuckets) {
			t.Errorf("%d messages (%d pages): the check read %d pages", n, u.Live/4096, reads)
		}
	}
}
