package queue

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// TestIdempotencyKey: a key seen gives back the first message's ID and
// queues nothing, also after a reopen; a key reused for another request
// is refused; after IdempotencyTTL Prune forgets it. Run inline and
// spooled (the spooled body's file must not be left behind).
func TestIdempotencyKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"inline", []byte("Subject: x\r\n\r\nhello\r\n")},
		{"spooled", bytes.Repeat([]byte("0123456789abcdef\r\n"), 20000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, clk, o := openTest(t, func(o *Options) { o.InlineMax = 64 << 10 })
			put := func(q *Queue, key string, fp byte) (string, error) {
				sp := q.NewSpool()
				sp.Write(tc.body)
				return q.Enqueue(context.Background(), NewMessage{
					From: "a@example.org", Rcpts: []string{"b@example.net"}, Spool: sp,
					Idempotency: &Idempotency{Key: key, Fingerprint: [32]byte{fp}},
				})
			}
			id1, err := put(q, "alice\x00k1", 1)
			if err != nil {
				t.Fatal(err)
			}
			var re *ReplayError
			if _, err := put(q, "alice\x00k1", 1); !errors.As(err, &re) || re.ID != id1 {
				t.Fatalf("same key again: %v, want a replay of %s", err, id1)
			}
			if _, err := put(q, "alice\x00k1", 2); !errors.Is(err, ErrIdempotencyMismatch) {
				t.Fatalf("same key, other request: %v, want ErrIdempotencyMismatch", err)
			}
			if got, err := q.Idempotent(Idempotency{Key: "alice\x00k1", Fingerprint: [32]byte{1}}); err != nil || got != id1 {
				t.Fatalf("Idempotent = %q, %v; want %s", got, err, id1)
			}
			id2, err := put(q, "bob\x00k1", 1) // another user's namespace
			if err != nil || id2 == id1 {
				t.Fatalf("other scope: %q, %v", id2, err)
			}
			if n := countMsgs(t, q); n != 2 {
				t.Fatalf("%d messages queued, want 2", n)
			}
			if tc.name == "spooled" {
				files, _ := filepath.Glob(filepath.Join(q.spoolDir, "*"))
				if len(files) != 2 {
					t.Fatalf("a replay left its spool file: %v", files)
				}
			}
			// A restart remembers the key.
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			q2, err := Open(o)
			if err != nil {
				t.Fatal(err)
			}
			defer q2.Close()
			if _, err := put(q2, "alice\x00k1", 1); !errors.As(err, &re) || re.ID != id1 {
				t.Fatalf("after reopen: %v, want a replay of %s", err, id1)
			}
			// After the TTL, Prune forgets it and the key is free.
			clk.Advance(IdempotencyTTL + time.Second)
			if _, err := q2.Prune(clk.Now()); err != nil {
				t.Fatal(err)
			}
			if n := countBucket(t, q2, bktIdem) + countBucket(t, q2, bktIdemExp); n != 0 {
				t.Fatalf("%d idempotency entries left after the TTL", n)
			}
			id3, err := put(q2, "alice\x00k1", 2)
			if err != nil || id3 == id1 {
				t.Fatalf("after the TTL: %q, %v; want a new message", id3, err)
			}
			checkInvariants(t, q2)
		})
	}
}

func countMsgs(t *testing.T, q *Queue) int { return countBucket(t, q, bktMsgs) }

func countBucket(t *testing.T, q *Queue, name []byte) int {
	t.Helper()
	n := 0
	if err := q.view(func(tx *bbolt.Tx) error {
		n = tx.Bucket(name).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}
