package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"go.etcd.io/bbolt"
)

// blockLoop occupies the commit goroutine with an op that waits for the
// returned release func, so that a test can line up writes for one
// group commit without relying on timing.
func blockLoop(t *testing.T, q *Queue) (release func()) {
	t.Helper()
	running, gate := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- q.write(context.Background(), func(*wtx) error {
			select {
			case <-running:
			default:
				close(running)
			}
			<-gate
			return nil
		}, nil)
	}()
	<-running
	return func() {
		close(gate)
		if err := <-errc; err != nil {
			t.Errorf("blocking op: %v", err)
		}
	}
}

// waitQueued waits until n writes are waiting for the commit goroutine.
func waitQueued(q *Queue, n int) {
	for len(q.ops) < n {
		runtime.Gosched()
	}
}

func TestConcurrentEnqueueSharesCommits(t *testing.T) {
	t.Parallel()
	q, _, _ := openTest(t, nil) // real fsync
	const clients, each = 20, 25
	release := blockLoop(t, q)
	before := q.Commits()
	var wg sync.WaitGroup
	errs := make(chan error, clients*each)
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				_, err := q.Enqueue(context.Background(), NewMessage{
					From: "s@x.test", Rcpts: []string{fmt.Sprintf("r%d@y.test", i)}, Body: make([]byte, 2048),
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	// Every client's first Enqueue waits behind the blocker, so at least
	// those 20 share one commit.
	waitQueued(q, clients)
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	commits := q.Commits() - before - 1
	if commits >= clients*each {
		t.Fatalf("%d commits for %d messages: no group commit", commits, clients*each)
	}
	t.Logf("%d messages in %d commits", clients*each, commits)
	cnt, _ := q.Counts()
	if cnt[StateQueued] != clients*each {
		t.Errorf("queued = %d", cnt[StateQueued])
	}
	checkInvariants(t, q)
}

func TestFailedOpDoesNotFailItsBatch(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	id := enqueue(t, q, "a@x.test")
	release := blockLoop(t, q)
	before := q.Commits()
	boom := errors.New("boom")
	type result struct {
		name string
		err  error
	}
	results := make(chan result, 3)
	go func() {
		_, err := q.Enqueue(context.Background(), NewMessage{Rcpts: []string{"b@x.test"}})
		results <- result{"enqueue", err}
	}()
	waitQueued(q, 1)
	go func() {
		// Writes something, then fails: its write must be rolled back.
		results <- result{"failing", q.write(context.Background(), func(w *wtx) error {
			if err := w.b(bktDest).Put([]byte("leak"), []byte("x")); err != nil {
				return err
			}
			return boom
		}, nil)}
	}()
	waitQueued(q, 2)
	go func() {
		results <- result{"update", q.Update(context.Background(), []Update{{ID: id, State: StateSent}})}
	}()
	waitQueued(q, 3)
	release()
	for i := 0; i < 3; i++ {
		r := <-results
		if r.name == "failing" {
			if !errors.Is(r.err, boom) {
				t.Errorf("failing op err = %v", r.err)
			}
		} else if r.err != nil {
			t.Errorf("%s: %v", r.name, r.err)
		}
	}
	if got := q.Commits() - before; got != 2 { // the blocker, then one shared commit
		t.Errorf("commits = %d, want 2", got)
	}
	if d, _ := q.LoadDestinations(); len(d) != 0 {
		t.Errorf("failed op's write leaked: %v", d)
	}
	if items, _ := q.Lease(c.Now(), 10); len(items) != 1 || items[0].Addr != "b@x.test" {
		t.Errorf("Lease = %+v", items)
	}
	checkInvariants(t, q)
}

// TestReopenAfterFailedCommit makes a commit fail by swapping in a
// read-only handle on the file (a stand-in for a disk that stopped taking
// writes), and checks that the queue reopens it and works again.
func TestReopenAfterFailedCommit(t *testing.T) {
	t.Parallel()
	q, _, o := openTest(t, nil)
	id := enqueue(t, q, "a@x.test")
	q.mu.Lock()
	if err := q.db.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := bbolt.Open(o.Path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	q.db = ro
	q.mu.Unlock()
	err = q.Update(context.Background(), []Update{{ID: id, State: StateSent}})
	if !errors.Is(err, bbolt.ErrDatabaseReadOnly) {
		t.Fatalf("Update on read-only handle = %v", err)
	}
	if m, err := q.Get(id); err != nil || m.Recipients[0].State != StateQueued {
		t.Fatalf("after failed commit: %+v %v", m, err)
	}
	update(t, q, Update{ID: id, State: StateSent})
	enqueue(t, q, "b@x.test")
	checkInvariants(t, q)
}

// TestFreelistWrittenAtCloseOnly: while the queue is open no commit
// writes bbolt's freelist (its size grows with what a drain deletes, and
// writing it at every commit slowed a drain of a million messages to 143
// msg/s, issue 10); Close writes it, so that a clean restart reads it
// from its page; a file left by a crash (copied while open) opens, bbolt
// rebuilding the freelist, and keeps every message.
func TestFreelistWrittenAtCloseOnly(t *testing.T) {
	q, _, o := openTest(t, nil)
	var ids []string
	for i := range 300 {
		ids = append(ids, enqueue(t, q, fmt.Sprintf("r%d@example.net", i)))
	}
	if _, err := q.Delete(ids[:200]); err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(t.TempDir(), "queue.db")
	raw, err := os.ReadFile(o.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crashed, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	rf, err := openRaw(crashed, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rf.meta.freelist != noFreelist {
		t.Errorf("an open queue's file has a freelist page (%d): commits still write it", rf.meta.freelist)
	}
	_ = rf.Close()

	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	rf, err = openRaw(o.Path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rf.meta.freelist == noFreelist || rf.free == 0 {
		t.Errorf("after Close: freelist page %d with %d free pages, want the freelist written", rf.meta.freelist, rf.free)
	}
	_ = rf.Close()

	co := o
	co.Path = crashed
	cq, err := Open(co)
	if err != nil {
		t.Fatalf("open the crashed copy: %v", err)
	}
	enqueue(t, cq, "after@example.net")
	if c, err := cq.Counts(); err != nil || c[StateQueued] != 101 {
		t.Errorf("crashed copy: %v queued (%v), want 101", c, err)
	}
	if err := cq.Close(); err != nil {
		t.Fatal(err)
	}
}
