package queue

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"time"

	"go.etcd.io/bbolt"
)

// wtx wraps one write transaction. All state changes of a recipient go
// through transition, which is the one place that keeps the due index,
// the active index, the stats counters and the message's open count and
// done index in step with the records.
type wtx struct {
	tx    *bbolt.Tx
	now   time.Time
	msgs  map[string]*msgRec
	dirty map[string]bool
	// doms caches the domain counters read in this transaction;
	// dirtyDoms names those to write back (see count).
	doms      map[string]*domStats
	dirtyDoms map[string]bool
	log       *slog.Logger // nil: slog.Default()
	// unlink lists the spooled messages that became final in this
	// transaction: their body files go once it has committed.
	unlink []string
	// dueTouched lists the domains whose due entries changed, for the
	// due feed (nil while nobody watches it).
	dueTouched map[string]struct{}
	// dueInside: a due entry went in at a time in the future (a
	// deferral), not at now (fresh mail); see dueFill.
	dueInside bool
	// ev is non-nil while events are stored (events.go).
	ev *evState
	// turns are the lane turns this transaction changed (domain -> the
	// last job came from the retry lane), kept by Queue.keepTurns once
	// it commits.
	turns map[string]bool
}

func newWtx(tx *bbolt.Tx, now time.Time) *wtx {
	return &wtx{tx: tx, now: now, msgs: map[string]*msgRec{}, dirty: map[string]bool{},
		doms: map[string]*domStats{}, dirtyDoms: map[string]bool{}}
}

func (w *wtx) b(name []byte) *bbolt.Bucket {
	b := w.tx.Bucket(name)
	if bytes.Equal(name, bktDue) {
		b.FillPercent = w.dueFill()
	} else if bytes.Equal(name, bktBodies) {
		// Never rewritten, keys only grow: fill pages to the brim
		// (bodystore.go).
		b.FillPercent = 1.0
	} else if appendOnly(name) {
		// Keys of these buckets grow with time (IDs sort by time; due
		// keys of fresh mail sort last among their domain's), so inserts
		// land at the right edge: fill pages fully rather than split
		// them in half (bbolt's default FillPercent is 0.5).
		b.FillPercent = 0.9
	}
	return b
}

func appendOnly(name []byte) bool {
	switch string(name) {
	case string(bktMsgs), string(bktRcpts), string(bktBodies), string(bktDone), string(bktOpen),
		string(bktRcptIdx): // within a domain and class, IDs grow with time
		return true
	}
	return false
}

// msg loads (and caches for this transaction) a message record.
func (w *wtx) msg(id string) (*msgRec, error) {
	if m, ok := w.msgs[id]; ok {
		return m, nil
	}
	if !validID(id) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	v := w.b(bktMsgs).Get([]byte(id))
	if v == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	m, err := decodeMsg(v)
	if err != nil {
		return nil, err
	}
	w.msgs[id] = m
	return m, nil
}

func (w *wtx) rcpt(id string, idx int) (*rcptRec, error) {
	v := w.b(bktRcpts).Get(rcptKey(id, idx))
	if v == nil {
		return nil, fmt.Errorf("%w: %s recipient %d", ErrNotFound, id, idx)
	}
	return decodeRcpt(v)
}

func (w *wtx) putRcpt(id string, idx int, r *rcptRec) error {
	return w.b(bktRcpts).Put(rcptKey(id, idx), encodeRcpt(r))
}

func (w *wtx) putMsg(id string, m *msgRec) error {
	return w.b(bktMsgs).Put([]byte(id), encodeMsg(m))
}

// flush writes back the message records and the domain counters
// changed by transitions.
func (w *wtx) flush() error {
	for id := range w.dirty {
		if err := w.putMsg(id, w.msgs[id]); err != nil {
			return err
		}
	}
	clear(w.dirty)
	return w.flushCounters()
}

func (w *wtx) addStat(s State, delta int64) error {
	b := w.b(bktStats)
	var n int64
	if v := b.Get([]byte(s)); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	n += delta
	if n < 0 {
		n = 0
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(n))
	return b.Put([]byte(s), v[:])
}

// transition moves recipient idx of message id from r.State (or from
// nothing, for a new recipient whose r.State is "") to state to. next is
// the NextAttempt for StateQueued and the lease deadline for StateActive
// (zero: the lease never expires). The caller must call flush before the
// transaction ends. A final state is never left: that would resurrect a
// message whose Done is already indexed.
func (w *wtx) transition(id string, idx int, r *rcptRec, to State, next time.Time) error {
	from := r.State
	if from != "" && !from.Open() {
		return fmt.Errorf("queue: %s recipient %d: cannot leave final state %s", id, idx, from)
	}
	switch from {
	case StateQueued:
		if err := w.unindexDue(id, idx, r); err != nil {
			return err
		}
	case StateActive:
		if err := w.b(bktActive).Delete(leaseKey(r.LeaseUntil, id, idx)); err != nil {
			return err
		}
		r.LeaseUntil = time.Time{}
	}
	switch to {
	case StateQueued:
		r.NextAttempt = next
		if err := w.indexDue(id, idx, r); err != nil {
			return err
		}
	case StateActive:
		r.LeaseUntil = next
		if err := w.b(bktActive).Put(leaseKey(next, id, idx), nil); err != nil {
			return err
		}
	}
	if from != "" {
		if err := w.addStat(from, -1); err != nil {
			return err
		}
	}
	if err := w.addStat(to, 1); err != nil {
		return err
	}
	if err := w.count(id, idx, r.Domain, from, to); err != nil {
		return err
	}
	opens, closes := (from == "" || !from.Open()) && to.Open(), from.Open() && !to.Open()
	if opens || closes {
		// Only a change of open-ness touches the message record, so a
		// deferral or a lease rewrites the recipient alone.
		m, err := w.msg(id)
		if err != nil {
			return err
		}
		if err := w.countOpen(id, m, opens); err != nil {
			return err
		}
	}
	r.State = to
	return w.putRcpt(id, idx, r)
}

// countOpen adjusts the message's open-recipient count, keeping the open
// index and the done index in step.
func (w *wtx) countOpen(id string, m *msgRec, opens bool) error {
	w.dirty[id] = true
	switch {
	case opens:
		m.Open++
		if m.Open == 1 {
			if err := w.b(bktOpen).Put([]byte(id), nil); err != nil {
				return err
			}
		}
	default:
		m.Open--
		if m.Open <= 0 {
			m.Open = 0
			m.Done = w.now
			if err := w.b(bktOpen).Delete([]byte(id)); err != nil {
				return err
			}
			if err := w.b(bktDone).Put(doneKey(m.Done, id), nil); err != nil {
				return err
			}
			// The body has no reader left once every recipient is final
			// (DSNs are built before the bounce is recorded): drop it now
			// rather than at Prune, so the file and its mapped pages grow
			// with the retained history only, not with every body.
			if err := w.deleteBody(id); err != nil {
				return err
			}
			if m.Spooled {
				w.unlink = append(w.unlink, id)
			}
		}
	}
	return nil
}
