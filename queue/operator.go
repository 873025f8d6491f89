package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/bbolt"
)

// The operator functions serve the admin API. They scan, which is fine
// off the hot path; the scheduler only ever uses Lease and NextDue.

// List returns the messages having at least one recipient matching f,
// oldest first (IDs sort by time), at most f.Limit when it is positive.
func (q *Queue) List(f Filter) ([]Message, error) {
	domain := strings.ToLower(f.Domain)
	var cutoff time.Time
	if f.OlderThan > 0 {
		cutoff = q.now().Add(-f.OlderThan)
	}
	var out []Message
	err := q.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bktMsgs).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if f.Limit > 0 && len(out) >= f.Limit {
				return nil
			}
			m, err := decodeMsg(v)
			if err != nil {
				return err
			}
			if !cutoff.IsZero() && !m.Received.Before(cutoff) {
				continue
			}
			rcpts, err := readRcpts(tx, string(k))
			if err != nil {
				return err
			}
			match := false
			for _, r := range rcpts {
				if (domain == "" || r.Domain == domain) && (f.State == "" || r.State == f.State) {
					match = true
					break
				}
			}
			if match {
				out = append(out, m.public(string(k), rcpts))
			}
		}
		return nil
	})
	return out, err
}

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
func (q *Queue) changeMessages(ids []string, pick func(State) bool, to State) (int, error) {
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
				return w.transition(id, idx, r, to, w.now)
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
	return q.changeMessages(ids, func(s State) bool { return s == StateQueued || s == StateActive }, StateHeld)
}

// Release makes held recipients of ids queued and due now. It returns
// the number of messages changed.
func (q *Queue) Release(ids []string) (int, error) {
	return q.changeMessages(ids, func(s State) bool { return s == StateHeld }, StateQueued)
}

// Delete moves every open recipient of ids to StateDeleted. It returns
// the number of messages changed.
func (q *Queue) Delete(ids []string) (int, error) {
	return q.changeMessages(ids, State.Open, StateDeleted)
}

// IDsForDomain returns the messages with an open recipient at domain.
// It walks the open index, so finished messages kept for retention cost
// nothing.
func (q *Queue) IDsForDomain(domain string) ([]string, error) {
	domain = strings.ToLower(domain)
	var out []string
	err := q.view(func(tx *bbolt.Tx) error {
		rc := tx.Bucket(bktRcpts).Cursor()
		return tx.Bucket(bktOpen).ForEach(func(k, _ []byte) error {
			for rk, rv := rc.Seek(k); rk != nil && bytes.HasPrefix(rk, k); rk, rv = rc.Next() {
				r, err := decodeRcpt(rv)
				if err != nil {
					return err
				}
				if r.Domain == domain && r.State.Open() {
					out = append(out, string(k))
					break
				}
			}
			return nil
		})
	})
	return out, err
}

// Flush makes every queued recipient (of domain, when not empty) due now.
// It returns the number of recipients moved. With a domain it reads that
// domain's part of the due index only.
func (q *Queue) Flush(domain string) (int, error) {
	domain = strings.ToLower(domain)
	var n int
	err := q.write(context.Background(), func(w *wtx) error {
		n = 0
		type ref struct {
			id  string
			idx int
		}
		var refs []ref
		c := w.b(bktDue).Cursor()
		k, _ := c.First()
		if domain != "" {
			k, _ = c.Seek(duePrefix(domain))
		}
		for k != nil {
			d, t, id, idx, err := parseDueKey(k)
			if err != nil {
				return err
			}
			if domain != "" && d != domain {
				break
			}
			if !t.After(w.now) {
				// Entries up to now are already due: skip to the
				// domain's first later one.
				k, _ = c.Seek(dueKeyUntil(d, w.now))
				continue
			}
			refs = append(refs, ref{id, idx})
			k, _ = c.Next()
		}
		for _, rf := range refs {
			r, err := w.rcpt(rf.id, rf.idx)
			if err != nil {
				return err
			}
			if err := w.transition(rf.id, rf.idx, r, StateQueued, w.now); err != nil {
				return err
			}
			n++
		}
		return nil
	}, nil)
	return n, err
}

// Counts returns the number of recipients in each state. It reads
// counters maintained in the same transactions as the states: O(1).
func (q *Queue) Counts() (map[State]int, error) {
	out := make(map[State]int, len(AllStates))
	err := q.view(func(tx *bbolt.Tx) error {
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
