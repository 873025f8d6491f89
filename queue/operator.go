package queue

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// The operator changes serve the admin API. Each runs in one group
// commit; the admin layer splits a large selection into pages (DomainIDs,
// bulkPage) so that no single commit holds the writer for long. The
// reads are in list.go.

// eachRcpt calls fn for every recipient of message id inside w. Unknown
// IDs are skipped: operators pass lists that may race with pruning.
func eachRcpt(w *wtx, id string, fn func(idx int, r *rcptRec) error) error {
	m, err := w.msg(id)
	if err != nil {
		return nil
	}
	for i := 0; i < m.NRcpt; i++ {
		r, err := w.rcpt(id, i)
		if err != nil {
			return err
		}
		if err := fn(i, r); err != nil {
			return err
		}
	}
	return nil
}

// changeMessages moves the recipients of ids for which pick returns true
// to state to (due now when StateQueued). It returns how many messages
// had at least one recipient changed.
func (q *Queue) changeMessages(ids []string, pick func(State) bool, to State, event string) (int, error) {
	var n int
	err := q.write(context.Background(), func(w *wtx) error {
		n = 0
		for _, id := range ids {
			changed := false
			err := eachRcpt(w, id, func(idx int, r *rcptRec) error {
				if !pick(r.State) {
					return nil
				}
				changed = true
				if err := w.transition(id, idx, r, to, w.now); err != nil {
					return err
				}
				return w.emitRcpt(event, id, idx, r, func(e *Event, _ *msgRec) { e.Reason = "operator" })
			})
			if err != nil {
				return err
			}
			if changed {
				n++
			}
		}
		return nil
	}, nil)
	return n, err
}

// Hold moves the queued and active recipients of ids to StateHeld, out
// of the due index. A delivery in flight finishes, but a deferral it
// reports keeps the recipient held. It returns the number of messages
// changed.
func (q *Queue) Hold(ids []string) (int, error) {
	return q.changeMessages(ids, func(s State) bool { return s == StateQueued || s == StateActive }, StateHeld, EventHeld)
}

// Release makes held recipients of ids queued and due now. It returns
// the number of messages changed.
func (q *Queue) Release(ids []string) (int, error) {
	return q.changeMessages(ids, func(s State) bool { return s == StateHeld }, StateQueued, EventReleased)
}

// Delete moves every open recipient of ids to StateDeleted. It returns
// the number of messages changed.
func (q *Queue) Delete(ids []string) (int, error) {
	return q.changeMessages(ids, State.Open, StateDeleted, EventDeleted)
}

// Counts returns the number of recipients in each state. It reads
// counters maintained in the same transactions as the states: O(1).
func (q *Queue) Counts() (map[State]int, error) {
	out := make(map[State]int, len(AllStates))
	err := q.view(func(tx *bbolt.Tx) error {
		q.reads.Add(uint64(len(AllStates)))
		b := tx.Bucket(bktStats)
		for _, s := range AllStates {
			if v := b.Get([]byte(s)); len(v) == 8 {
				out[s] = int(binary.BigEndian.Uint64(v))
			} else {
				out[s] = 0
			}
		}
		return nil
	})
	return out, err
}

// Oldest returns the Received time of the oldest message that still has
// an open recipient. The open index is keyed by ID, and IDs sort by
// receive time, so this reads one entry: O(log n).
func (q *Queue) Oldest() (time.Time, bool, error) {
	var t time.Time
	var ok bool
	err := q.view(func(tx *bbolt.Tx) error {
		q.reads.Add(1)
		k, _ := tx.Bucket(bktOpen).Cursor().First()
		if k == nil {
			return nil
		}
		v := tx.Bucket(bktMsgs).Get(k)
		if v == nil {
			return fmt.Errorf("queue: open index names missing message %s", k)
		}
		m, err := decodeMsg(v)
		if err != nil {
			return err
		}
		t, ok = m.Received, true
		return nil
	})
	return t, ok, err
}
