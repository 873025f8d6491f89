package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// Idempotency keys (the HTTP API's Idempotency-Key header,
// draft-ietf-httpapi-idempotency-key-header): a retried request whose key
// was seen gets the message ID of the first one and nothing is queued
// again. The key is stored in the transaction that queues the message, so
// that "queued" and "key recorded" cannot part, not even in a crash, and
// it survives a restart. Keys live IdempotencyTTL, then Prune drops them:
// the buckets hold at most one day of keys, about 100 bytes each.

// IdempotencyTTL is how long a key is remembered. Clients retry within
// minutes; Stripe keeps its keys 24 hours, and so do we.
const IdempotencyTTL = 24 * time.Hour

// MaxIdempotencyKey bounds a key (scope included): real keys are UUIDs.
const MaxIdempotencyKey = 512

var (
	// bktIdem: scoped key -> be64 expiry nanos || 32-byte fingerprint || id.
	bktIdem = []byte("idem")
	// bktIdemExp: be64 expiry nanos || scoped key -> nil, for Prune.
	bktIdemExp = []byte("idemexp")
)

const idemFPLen = 32

// Idempotency names a submission for retries: Key is already scoped by
// the caller (one namespace per user), Fingerprint is a digest of the
// request, so that a key reused for a different request is refused.
type Idempotency struct {
	Key         string
	Fingerprint [idemFPLen]byte
}

// ErrIdempotencyMismatch: the key was used for a different request.
var ErrIdempotencyMismatch = errors.New("queue: idempotency key already used for a different request")

// ReplayError is returned by Enqueue when the message's idempotency key
// was seen within IdempotencyTTL with the same fingerprint: nothing was
// queued, ID is the message queued the first time.
type ReplayError struct{ ID string }

func (e *ReplayError) Error() string {
	return fmt.Sprintf("queue: idempotency key already used: message %s", e.ID)
}

// Idempotent looks a key up: the ID queued under it, or ErrNotFound. It
// reads only; Enqueue checks again in its transaction (two requests with
// one key may race here).
func (q *Queue) Idempotent(k Idempotency) (string, error) {
	var id string
	err := q.view(func(tx *bbolt.Tx) error {
		var err error
		id, err = idemLookup(tx.Bucket(bktIdem), k, q.now())
		return err
	})
	return id, err
}

// idemLookup returns the ID recorded for k and still valid at now,
// ErrNotFound, or ErrIdempotencyMismatch.
func idemLookup(b *bbolt.Bucket, k Idempotency, now time.Time) (string, error) {
	v := b.Get([]byte(k.Key))
	if len(v) < 8+idemFPLen {
		return "", ErrNotFound
	}
	if int64(binary.BigEndian.Uint64(v)) <= now.UnixNano() {
		return "", ErrNotFound // expired, not yet pruned
	}
	if !bytes.Equal(v[8:8+idemFPLen], k.Fingerprint[:]) {
		return "", ErrIdempotencyMismatch
	}
	return string(v[8+idemFPLen:]), nil
}

// idemRecord checks k inside the enqueue transaction and records it for
// id: a *ReplayError when it was seen.
func (w *wtx) idemRecord(k *Idempotency, id string) error {
	if k == nil {
		return nil
	}
	if k.Key == "" || len(k.Key) > MaxIdempotencyKey {
		return fmt.Errorf("queue: idempotency key of %d bytes (1 to %d)", len(k.Key), MaxIdempotencyKey)
	}
	b := w.tx.Bucket(bktIdem)
	switch old, err := idemLookup(b, *k, w.now); {
	case err == nil:
		return &ReplayError{ID: old}
	case !errors.Is(err, ErrNotFound):
		return err
	}
	if v := b.Get([]byte(k.Key)); len(v) >= 8 {
		// An expired entry Prune has not reached: its index entry goes.
		if err := w.tx.Bucket(bktIdemExp).Delete(idemExpKey(binary.BigEndian.Uint64(v), k.Key)); err != nil {
			return err
		}
	}
	exp := uint64(w.now.Add(IdempotencyTTL).UnixNano())
	v := make([]byte, 8, 8+idemFPLen+len(id))
	binary.BigEndian.PutUint64(v, exp)
	v = append(append(v, k.Fingerprint[:]...), id...)
	if err := b.Put([]byte(k.Key), v); err != nil {
		return err
	}
	return w.tx.Bucket(bktIdemExp).Put(idemExpKey(exp, k.Key), nil)
}

func idemExpKey(exp uint64, key string) []byte {
	k := make([]byte, 8, 8+len(key))
	binary.BigEndian.PutUint64(k, exp)
	return append(k, key...)
}

// pruneIdempotency drops the keys expired at now, a batch per commit.
func (q *Queue) pruneIdempotency(now time.Time) (int, error) {
	cut := uint64(now.UnixNano())
	due := false
	if err := q.view(func(tx *bbolt.Tx) error {
		k, _ := tx.Bucket(bktIdemExp).Cursor().First()
		due = len(k) >= 8 && binary.BigEndian.Uint64(k) <= cut
		return nil
	}); err != nil || !due {
		return 0, err
	}
	total := 0
	for {
		n := 0
		err := q.write(context.Background(), func(w *wtx) error {
			n = 0
			exp, idem := w.tx.Bucket(bktIdemExp), w.tx.Bucket(bktIdem)
			var keys [][]byte
			c := exp.Cursor()
			for k, _ := c.First(); k != nil && len(keys) < pruneBatch; k, _ = c.Next() {
				if len(k) < 8 || binary.BigEndian.Uint64(k) > cut {
					break
				}
				keys = append(keys, append([]byte(nil), k...))
			}
			for _, k := range keys {
				if err := exp.Delete(k); err != nil {
					return err
				}
				// The key may have been recorded again since (a newer
				// expiry): only an entry with this expiry goes.
				if v := idem.Get(k[8:]); len(v) >= 8 && bytes.Equal(v[:8], k[:8]) {
					if err := idem.Delete(k[8:]); err != nil {
						return err
					}
				}
				n++
			}
			return nil
		}, nil)
		total += n
		if err != nil || n < pruneBatch {
			return total, err
		}
	}
}
