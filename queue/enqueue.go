package queue

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
)

// Enqueue stores m durably and makes every recipient due now. When it
// returns nil the message is fsynced. It fails with an error wrapping
// ErrNoSpace when the disk is full or below MinFreeBytes, ErrUnwritable
// when it is read-only or not writable by us.
func (q *Queue) Enqueue(ctx context.Context, m NewMessage) (string, error) {
	if len(m.Rcpts) == 0 {
		return "", errors.New("queue: enqueue: no recipients")
	}
	if q.opts.MinFreeBytes > 0 {
		free, err := freeBytes(filepath.Dir(q.opts.Path))
		if err != nil {
			return "", storageErr("enqueue", err)
		}
		if free < q.opts.MinFreeBytes {
			return "", fmt.Errorf("queue: enqueue: %d bytes free, reserve is %d: %w", free, q.opts.MinFreeBytes, ErrNoSpace)
		}
	}
	if s := m.Spool; s != nil && s.Spilled() {
		return q.enqueueSpooled(ctx, m)
	}
	if s := m.Spool; s != nil {
		if s.err != nil {
			return "", s.err
		}
		// Small enough to stay inline: one value, one shared commit.
		if len(m.Body) == 0 {
			m.Body = s.buf
		} else {
			m.Body = append(append(make([]byte, 0, len(m.Body)+len(s.buf)), m.Body...), s.buf...)
		}
		s.Discard()
		m.Spool = nil
	}
	var id string
	err := q.write(ctx, func(w *wtx) error {
		var err error
		id, err = q.enqueueTx(w, m, "")
		return err
	}, nil)
	if err != nil {
		return "", err
	}
	return id, nil
}

// enqueueSpooled stores a message whose body is in a spool file. Order,
// for "250 means on disk": the file is fsynced, renamed to the message ID
// and the directory fsynced before the commit that references it. A crash
// in between leaves a file that no record names, which the start-up
// sweep removes.
func (q *Queue) enqueueSpooled(ctx context.Context, m NewMessage) (string, error) {
	// The ID is chosen before the commit (the file is named by it). The
	// generator is unique within this process, which holds the file
	// lock; enqueueTx still refuses a collision.
	id := q.ids.next(q.now())
	s := m.Spool
	if err := s.publish(id); err != nil {
		s.Discard()
		return "", err
	}
	err := q.write(ctx, func(w *wtx) error {
		_, err := q.enqueueTx(w, m, id)
		return err
	}, nil)
	if err == nil {
		return id, nil
	}
	// Remove the file only when the record is known not to be there: a
	// failed fsync may still leave the commit on disk (see the package
	// doc), and a cancelled wait may still commit. Otherwise the sweep
	// decides at the next start.
	if ctx.Err() == nil && !errors.Is(err, ErrClosed) {
		if _, gerr := q.Get(id); errors.Is(gerr, ErrNotFound) {
			q.removeSpooled([]string{id})
		}
	}
	return "", err
}

// enqueueTx stores m inside w and returns its ID: id when given (a
// spooled body already named by it), a new one otherwise.
func (q *Queue) enqueueTx(w *wtx, m NewMessage, id string) (string, error) {
	if id == "" {
		id = q.ids.next(w.now)
		for w.b(bktMsgs).Get([]byte(id)) != nil {
			id = q.ids.next(w.now)
		}
	} else if w.b(bktMsgs).Get([]byte(id)) != nil {
		return "", fmt.Errorf("queue: message ID %s already in use", id)
	}
	rec := &msgRec{
		From: m.From, Received: w.now, Size: int64(len(m.Body)),
		ClientAddr: m.ClientAddr, Helo: m.Helo, User: m.User, SMTPUTF8: m.SMTPUTF8,
		NRcpt: len(m.Rcpts), Ret: m.DSN.Ret, EnvID: m.DSN.EnvID, RequireTLS: m.RequireTLS, TLSReport: m.TLSReport,
	}
	if s := m.Spool; s != nil {
		rec.Spooled = true
		rec.Size += s.n
		rec.EightBit = s.eight || has8Bit(m.Body)
	}
	if err := w.idemRecord(m.Idempotency, id); err != nil {
		return "", err
	}
	// The record is written once, by flush, after the recipients have
	// set its open count.
	w.msgs[id], w.dirty[id] = rec, true
	if err := w.putBody(id, m.Body); err != nil {
		return "", fmt.Errorf("queue: store body: %w", err)
	}
	if q.testHookCommit != nil {
		if err := q.testHookCommit(id); err != nil {
			return "", err
		}
	}
	for i, a := range m.Rcpts {
		r := &rcptRec{Addr: a, Domain: domainOf(a)}
		if i < len(m.RcptDSN) {
			r.Notify, r.ORcpt = m.RcptDSN[i].Notify, m.RcptDSN[i].ORcpt
		}
		if err := w.transition(id, i, r, StateQueued, w.now); err != nil {
			return "", err
		}
		if err := w.emitRcpt(EventAccepted, id, i, r, nil); err != nil {
			return "", err
		}
	}
	return id, nil
}
