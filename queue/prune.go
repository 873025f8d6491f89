package queue

import (
	"bytes"
	"context"
	"time"

	"go.etcd.io/bbolt"
)

// pruneBatch bounds one prune transaction so that a large backlog of
// finished mail does not build one huge commit.
const pruneBatch = 1000

// Prune deletes the messages whose Done is older than Retention,
// walking the done-time index from its start, and the idempotency keys
// past IdempotencyTTL. It returns the number of messages deleted.
func (q *Queue) Prune(now time.Time) (int, error) {
	if _, err := q.pruneIdempotency(now); err != nil {
		return 0, err
	}
	cutoff := timeKey(now.Add(-q.opts.Retention))
	// Most runs find nothing old enough: a read says so, where a write
	// would cost a commit and its fsyncs for nothing (bbolt writes its
	// meta page even for an empty transaction).
	due := false
	err := q.view(func(tx *bbolt.Tx) error {
		k, _ := tx.Bucket(bktDone).Cursor().First()
		if k != nil {
			t, _, err := parseDoneKey(k)
			due = err != nil || timeKey(t) < cutoff
		}
		return nil
	})
	if err != nil || !due {
		return 0, err
	}
	total := 0
	for {
		var n int
		err := q.write(context.Background(), func(w *wtx) error {
			n = 0
			var keys [][]byte
			c := w.b(bktDone).Cursor()
			for k, _ := c.First(); k != nil && len(keys) < pruneBatch; k, _ = c.Next() {
				t, _, err := parseDoneKey(k)
				if err != nil {
					return err
				}
				if timeKey(t) >= cutoff {
					break
				}
				keys = append(keys, append([]byte(nil), k...))
			}
			for _, k := range keys {
				_, id, _ := parseDoneKey(k)
				if err := pruneMessage(w, id); err != nil {
					return err
				}
				if err := w.b(bktDone).Delete(k); err != nil {
					return err
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

func pruneMessage(w *wtx, id string) error {
	prefix := []byte(id)
	rb := w.b(bktRcpts)
	var keys [][]byte
	c := rb.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		r, err := decodeRcpt(v)
		if err != nil {
			return err
		}
		if err := w.addStat(r.State, -1); err != nil {
			return err
		}
		id, idx, err := parseRcptKey(k)
		if err != nil {
			return err
		}
		if err := w.uncount(id, idx, r.Domain, r.State); err != nil {
			return err
		}
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := rb.Delete(k); err != nil {
			return err
		}
	}
	if err := w.b(bktOpen).Delete(prefix); err != nil {
		return err
	}
	delete(w.msgs, id)
	delete(w.dirty, id)
	if err := w.deleteBody(id); err != nil {
		return err
	}
	return w.b(bktMsgs).Delete(prefix)
}
