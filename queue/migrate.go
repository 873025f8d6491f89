package queue

import (
	"go.etcd.io/bbolt"
)

// migrateBatch bounds one transaction of migrateDue, so that a large old
// queue does not build one huge transaction in memory.
const migrateBatch = 20000

// migrateDue moves the due index of a file written before issue 10 (one
// time order for every domain, bucket "due") to the per-domain index,
// in batches, each atomic: a crash half-way leaves both buckets
// consistent with the records, and the next Open goes on. It runs once
// per file; its cost is O(queued) that one time.
func (q *Queue) migrateDue() error {
	moved := 0
	for {
		done := false
		err := q.db.Update(func(tx *bbolt.Tx) error {
			old := tx.Bucket(bktOldDue)
			if old == nil {
				done = true
				return nil
			}
			w := newWtx(tx, q.now())
			var keys [][]byte
			c := old.Cursor()
			for k, _ := c.First(); k != nil && len(keys) < migrateBatch; k, _ = c.Next() {
				keys = append(keys, append([]byte(nil), k...))
			}
			if len(keys) == 0 {
				done = true
				return tx.DeleteBucket(bktOldDue)
			}
			for _, k := range keys {
				if err := old.Delete(k); err != nil {
					return err
				}
				_, id, idx, err := parseOldDueKey(k)
				if err != nil {
					continue // a malformed key names nothing to keep
				}
				r, err := w.rcpt(id, idx)
				if err != nil || r.State != StateQueued {
					continue // a stale entry: nothing to move
				}
				if err := w.indexDue(id, idx, r); err != nil {
					return err
				}
				moved++
			}
			return nil
		})
		if err != nil {
			return storageErr("migrate the due index of "+q.opts.Path, err)
		}
		if done {
			break
		}
	}
	if moved > 0 {
		q.log.Info("queue: moved the due index to the per-domain layout", "recipients", moved)
	}
	return nil
}
