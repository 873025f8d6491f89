package queue

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sluice/internal/fakeclock"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"sluice/config"
)

// clock is the shared test clock (internal/fakeclock).
type clock = fakeclock.Clock

func newClock() *clock { return fakeclock.New() }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testOptions are the daemon's options from the default config
// (OptionsFrom(config.Default())) for a queue file at path, with a silent
// log: Open fills nothing in, so a test states every value it changes.
func testOptions(path string) Options {
	o := OptionsFrom(config.Default())
	o.Path, o.Logger = path, quietLogger()
	return o
}

// openTest opens a queue in a fresh directory with a fake clock and a
// short lock timeout.
func openTest(t testing.TB, mod func(*Options)) (*Queue, *clock, Options) {
	t.Helper()
	c := newClock()
	o := testOptions(filepath.Join(t.TempDir(), "data", "queue.db"))
	o.LockTimeout, o.Now = 50*time.Millisecond, c.Now
	if mod != nil {
		mod(&o)
	}
	q, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q, c, o
}

func enqueue(t testing.TB, q *Queue, rcpts ...string) string {
	t.Helper()
	id, err := q.Enqueue(context.Background(), NewMessage{
		From: "sender@example.org", Rcpts: rcpts, Body: []byte("Subject: x\r\n\r\nhello\r\n"),
		ClientAddr: "127.0.0.1:1234", Helo: "client.test",
	})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return id
}

func update(t testing.TB, q *Queue, ups ...Update) {
	t.Helper()
	if err := q.Update(context.Background(), ups); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// checkInvariants verifies, by a full scan, what the incremental writes
// promise: a queued recipient has exactly one due entry at its
// NextAttempt, an active one exactly one active entry, others none; the
// stats counters equal the real counts; Open and Done agree with the
// recipients; the done index holds exactly the finished messages.
func checkInvariants(t testing.TB, q *Queue) {
	t.Helper()
	if err := q.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	err := q.view(func(tx *bbolt.Tx) error {
		due := map[string]bool{}
		if err := tx.Bucket(bktDue).ForEach(func(k, _ []byte) error {
			due[string(k)] = true
			return nil
		}); err != nil {
			return err
		}
		active := map[string]bool{}
		_ = tx.Bucket(bktActive).ForEach(func(k, _ []byte) error {
			active[string(k)] = true
			return nil
		})
		done := map[string]bool{}
		_ = tx.Bucket(bktDone).ForEach(func(k, _ []byte) error {
			done[string(k)] = true
			return nil
		})
		openIdx := map[string]bool{}
		_ = tx.Bucket(bktOpen).ForEach(func(k, _ []byte) error {
			openIdx[string(k)] = true
			return nil
		})
		counts := map[State]int{}
		err := tx.Bucket(bktMsgs).ForEach(func(k, v []byte) error {
			id := string(k)
			m, err := decodeMsg(v)
			if err != nil {
				return err
			}
			open := 0
			for i := 0; i < m.NRcpt; i++ {
				rv := tx.Bucket(bktRcpts).Get(rcptKey(id, i))
				if rv == nil {
					return fmt.Errorf("%s: missing recipient %d", id, i)
				}
				r, err := decodeRcpt(rv)
				if err != nil {
					return err
				}
				counts[r.State]++
				dk := string(dueKey(r.Domain, laneOf(r), r.NextAttempt, id, i))
				if r.State == StateQueued {
					if !due[dk] {
						return fmt.Errorf("%s/%d queued without due entry", id, i)
					}
					delete(due, dk)
				}
				ak := string(leaseKey(r.LeaseUntil, id, i))
				if r.State != StateActive && !r.LeaseUntil.IsZero() {
					return fmt.Errorf("%s/%d %s with a lease deadline", id, i, r.State)
				}
				if r.State == StateActive {
					if !active[ak] {
						return fmt.Errorf("%s/%d active without lease entry", id, i)
					}
					delete(active, ak)
				}
				if r.State.Open() {
					open++
				}
			}
			if open != m.Open {
				return fmt.Errorf("%s: Open=%d, real %d", id, m.Open, open)
			}
			if (open == 0) != !m.Done.IsZero() {
				return fmt.Errorf("%s: open=%d but Done=%v", id, open, m.Done)
			}
			if (open > 0) != openIdx[id] {
				return fmt.Errorf("%s: open=%d but open index=%v", id, open, openIdx[id])
			}
			delete(openIdx, id)
			if open == 0 {
				dk := string(doneKey(m.Done, id))
				if !done[dk] {
					return fmt.Errorf("%s: finished but not in done index", id)
				}
				delete(done, dk)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(due) != 0 || len(active) != 0 || len(done) != 0 || len(openIdx) != 0 {
			return fmt.Errorf("stale index entries: due=%d active=%d done=%d open=%d", len(due), len(active), len(done), len(openIdx))
		}
		for _, s := range AllStates {
			var n int
			if v := tx.Bucket(bktStats).Get([]byte(s)); len(v) == 8 {
				n = int(binary.BigEndian.Uint64(v))
			}
			if n != counts[s] {
				return fmt.Errorf("stats %s=%d, real %d", s, n, counts[s])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("invariants: %v", err)
	}
}

// bodyOf reads the whole body of message id, for comparisons.
func bodyOf(q *Queue, id string) ([]byte, error) {
	b, err := q.OpenBody(id)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return io.ReadAll(b)
}
