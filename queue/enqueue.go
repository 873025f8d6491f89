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
	var id string
	err := q.write(ctx, func(w *wtx) error {
		var err error
		id, err = q.enqueueTx(w, m)
		return err
	}, nil)
	if err != nil {
		return "", err
	}
	return id, nil
}

// enqueueTx stores m inside w and returns its new ID.
func (q *Queue) enqueueTx(w *wtx, m NewMessage) (string, error) {
	id := q.ids.next(w.now)
	for w.b(bktMsgs).Get([]byte(id)) != nil {
		id = q.ids.next(w.now)
	}
	rec := &msgRec{
		From: m.From, Received: w.now, Size: int64(len(m.Body)),
		ClientAddr: m.ClientAddr, Helo: m.Helo, User: m.User, SMTPUTF8: m.SMTPUTF8,
		NRcpt: len(m.Rcpts),
	}
	// The record is written once, by flush, after the recipients have
	// set its open count.
	w.msgs[id], w.dirty[id] = rec, true
	if err := w.b(bktBodies).Put([]byte(id), m.Body); err != nil {
		return "", fmt.Errorf("queue: store body: %w", err)
	}
	for i, a := range m.Rcpts {
		r := &rcptRec{Addr: a, Domain: domainOf(a)}
		if err := w.transition(id, i, r, StateQueued, w.now); err != nil {
			return "", err
		}
	}
	return id, nil
}
