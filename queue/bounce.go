package queue

import (
	"context"
	"fmt"
)

// bounceBatch bounds the messages of one Bounce transaction.
const bounceBatch = 100

// BounceFunc builds the DSN for one message that Bounce is failing: m as
// the transaction sees it (before the change) and the indexes of the
// recipients being bounced. It returns nil for no DSN (the null sender).
// It runs inside the commit goroutine, so it must not call the Queue.
type BounceFunc func(m *Message, failed []int) (*NewMessage, error)

// Bounce moves the queued and held recipients of every message in ids
// to StateBounced, recording att, and queues the DSN that dsn builds for
// the message, in the same transaction. The state is checked where it
// is changed: a recipient delivered, leased or finished since the caller
// last looked is left alone and named in no DSN, and a crash can lose
// neither the DSN nor the bounce without the other. A recipient in
// flight (StateActive) is left to its delivery. Unknown IDs are skipped.
// It returns the number of messages with at least one recipient bounced.
func (q *Queue) Bounce(ids []string, att Attempt, dsn BounceFunc) (int, error) {
	total := 0
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), bounceBatch)]
		ids = ids[len(chunk):]
		var n int
		err := q.write(context.Background(), func(w *wtx) error {
			n = 0
			for _, id := range chunk {
				ok, err := q.bounceTx(w, id, att, dsn)
				if err != nil {
					return err
				}
				if ok {
					n++
				}
			}
			return nil
		}, nil)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

func (q *Queue) bounceTx(w *wtx, id string, att Attempt, dsn BounceFunc) (bool, error) {
	m, err := w.msg(id)
	if err != nil {
		return false, nil // pruned or mistyped: the other IDs still count
	}
	rcpts := make([]Recipient, m.NRcpt)
	var failed []int
	for i := range rcpts {
		r, err := w.rcpt(id, i)
		if err != nil {
			return false, err
		}
		rcpts[i] = r.public()
		if r.State == StateQueued || r.State == StateHeld {
			failed = append(failed, i)
		}
	}
	if len(failed) == 0 {
		return false, nil
	}
	pub := m.public(id, rcpts)
	report, err := dsn(&pub, failed)
	if err != nil {
		return false, fmt.Errorf("queue: bounce %s: %w", id, err)
	}
	if att.At.IsZero() {
		att.At = w.now
	}
	for _, i := range failed {
		a := att
		if err := applyUpdate(w, Update{ID: id, Rcpt: i, State: StateBounced, Attempt: &a, Detail: EventDetail{DSN: "5.0.0", Category: "other"}}); err != nil {
			return false, err
		}
	}
	if report != nil {
		if len(report.Rcpts) == 0 || report.Spool != nil {
			return false, fmt.Errorf("queue: bounce %s: DSN without recipients or with a spool", id)
		}
		if _, err := q.enqueueTx(w, *report, ""); err != nil {
			return false, err
		}
	}
	return true, nil
}
