package queue

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// Lease takes up to max recipients that are due (NextAttempt <= now), in
// NextAttempt order, marks them StateActive and removes them from the due
// index, in one group commit. It walks the due index from its start, so
// its cost is O(log n + max), never a scan of the queue.
func (q *Queue) Lease(now time.Time, max int) ([]Item, error) {
	if max <= 0 {
		return nil, nil
	}
	limit := timeKey(now)
	var items []Item
	err := q.write(context.Background(), func(w *wtx) error {
		items = items[:0]
		type ref struct {
			id  string
			idx int
			key []byte
		}
		var refs []ref
		c := w.b(bktDue).Cursor()
		for k, _ := c.First(); k != nil && len(refs) < max; k, _ = c.Next() {
			t, id, idx, err := parseDueKey(k)
			if err != nil {
				return err
			}
			if timeKey(t) > limit {
				break
			}
			refs = append(refs, ref{id, idx, append([]byte(nil), k...)})
		}
		for _, rf := range refs {
			r, err := w.rcpt(rf.id, rf.idx)
			if err != nil {
				return err
			}
			if r.State != StateQueued {
				// Cannot happen while transition is the only writer of
				// the index; drop the stale key rather than wedge the
				// scheduler on it.
				q.log.Error("queue: stale due index entry", "id", rf.id, "rcpt", rf.idx, "state", r.State)
				if err := w.b(bktDue).Delete(rf.key); err != nil {
					return err
				}
				continue
			}
			m, err := w.msg(rf.id)
			if err != nil {
				return err
			}
			next := r.NextAttempt
			if err := w.transition(rf.id, rf.idx, r, StateActive, time.Time{}); err != nil {
				return err
			}
			items = append(items, Item{
				ID: rf.id, Rcpt: rf.idx, Addr: r.Addr, Domain: r.Domain, From: m.From,
				Attempts: r.Attempts, Received: m.Received, NextAttempt: next, SMTPUTF8: m.SMTPUTF8,
			})
		}
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	return items, nil
}

// NextDue returns the earliest NextAttempt in the due index (ok=false
// when it is empty). O(log n).
func (q *Queue) NextDue() (t time.Time, ok bool, err error) {
	err = q.view(func(tx *bbolt.Tx) error {
		k, _ := tx.Bucket(bktDue).Cursor().First()
		if k == nil {
			return nil
		}
		t, _, _, err = parseDueKey(k)
		ok = err == nil
		return err
	})
	if err != nil {
		return time.Time{}, false, err
	}
	return t, ok, nil
}

// Update applies ups in one group commit, all or nothing. Rules, so that
// a worker finishing a lease cannot undo an operator's action:
//   - a recipient already final (e.g. deleted while its delivery ran)
//     keeps its state; only the Attempt is recorded;
//   - a held recipient stays held on StateQueued, but takes a final state.
func (q *Queue) Update(ctx context.Context, ups []Update) error {
	for _, u := range ups {
		switch u.State {
		case StateQueued, StateSent, StateBounced, StateExpired:
		default:
			return fmt.Errorf("queue: update %s recipient %d: state %q not allowed", u.ID, u.Rcpt, u.State)
		}
	}
	if len(ups) == 0 {
		return nil
	}
	return q.write(ctx, func(w *wtx) error {
		for _, u := range ups {
			if err := applyUpdate(w, u); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}

func applyUpdate(w *wtx, u Update) error {
	if !validID(u.ID) || u.Rcpt < 0 {
		return fmt.Errorf("%w: %q recipient %d", ErrNotFound, u.ID, u.Rcpt)
	}
	r, err := w.rcpt(u.ID, u.Rcpt)
	if err != nil {
		return err
	}
	if a := u.Attempt; a != nil {
		r.History = append(r.History, attemptRec(*a))
		r.Attempts++
		r.LastReply, r.LastClass = a.Reply, a.Class
	}
	switch {
	case !r.State.Open(), r.State == StateHeld && u.State == StateQueued:
		return w.putRcpt(u.ID, u.Rcpt, r)
	default:
		return w.transition(u.ID, u.Rcpt, r, u.State, u.NextAttempt)
	}
}
