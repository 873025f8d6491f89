package queue

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// benchClients is the number of concurrent SMTP clients modelled.
const benchClients = 20

func parallelism() int {
	p := (benchClients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
	return max(p, 1)
}

// BenchmarkEnqueueParallel enqueues 2 KB, one-recipient messages from
// ~20 goroutines with real fsync and reports commits (fsyncs) per message.
func BenchmarkEnqueueParallel(b *testing.B) {
	q, _, _ := openTest(b, func(o *Options) { o.Now = nil })
	body := make([]byte, 2048)
	b.SetParallelism(parallelism())
	b.SetBytes(int64(len(body)))
	before := q.Commits()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := q.Enqueue(context.Background(), NewMessage{
				From: "s@x.test", Rcpts: []string{"r@y.test"}, Body: body,
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(q.Commits()-before)/float64(b.N), "commits/msg")
}

// BenchmarkEnqueueSerial is one client: one fsync per message, the cost
// group commit amortises.
func BenchmarkEnqueueSerial(b *testing.B) {
	q, _, _ := openTest(b, func(o *Options) { o.Now = nil })
	body := make([]byte, 2048)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := q.Enqueue(context.Background(), NewMessage{
			From: "s@x.test", Rcpts: []string{"r@y.test"}, Body: body,
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnqueueNoSync measures the CPU cost of an Enqueue (encoding,
// indexes, channel hand-off) without the fsync.
func BenchmarkEnqueueNoSync(b *testing.B) {
	q, _, _ := openTest(b, func(o *Options) { o.Now = nil; o.NoSync = true })
	body := make([]byte, 2048)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := q.Enqueue(context.Background(), NewMessage{
			From: "s@x.test", Rcpts: []string{"r@y.test"}, Body: body,
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBoltBatchParallel is the alternative we did not take: the
// same 20 clients writing a 2 KB value each through bbolt's DB.Batch,
// which waits for its MaxBatchDelay timer (10 ms) before committing.
func BenchmarkBoltBatchParallel(b *testing.B) {
	db, err := bbolt.Open(filepath.Join(b.TempDir(), "b.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	_ = db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err })
	g := newIDGen()
	body := make([]byte, 2048)
	b.SetParallelism(parallelism())
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := g.next(testNow())
			if err := db.Batch(func(tx *bbolt.Tx) error {
				return tx.Bucket([]byte("b")).Put([]byte(id), body)
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func testNow() time.Time { return time.Now() }

// BenchmarkLeaseAt100k leases 100 recipients and defers them again with
// 100,000 recipients in the due index: the cost must not grow with the
// queue (Lease walks the index from its start).
func BenchmarkLeaseAt100k(b *testing.B) {
	for _, size := range []int{1000, 100000} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			q, c, _ := openTest(b, func(o *Options) { o.NoSync = true })
			body := make([]byte, 512)
			for n := 0; n < size; n += 1000 {
				err := q.write(context.Background(), func(w *wtx) error {
					for i := 0; i < 1000; i++ {
						if _, err := q.enqueueTx(w, NewMessage{Rcpts: []string{"r@y.test"}, Body: body}, ""); err != nil {
							return err
						}
					}
					return nil
				}, nil)
				if err != nil {
					b.Fatal(err)
				}
			}
			now := c.Now()
			b.ResetTimer()
			for b.Loop() {
				items, err := q.Lease(now, 100)
				if err != nil || len(items) != 100 {
					b.Fatalf("Lease = %d, %v", len(items), err)
				}
				ups := make([]Update, len(items))
				now = now.Add(time.Millisecond)
				for i, it := range items {
					ups[i] = Update{ID: it.ID, Rcpt: it.Rcpt, State: StateQueued, NextAttempt: now}
				}
				if err := q.Update(context.Background(), ups); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
