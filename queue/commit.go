package queue

import (
	"context"
	"errors"
	"slices"

	"go.etcd.io/bbolt"
)

// maxBatch bounds one group commit so that a burst cannot build a huge
// transaction (bbolt holds all dirty pages in memory until commit).
const maxBatch = 512

// errOpFailed aborts a group transaction when one of its operations
// fails; the others are then run again without it.
var errOpFailed = errors.New("queue: operation failed")

// op is one caller's write, run by the commit goroutine.
type op struct {
	// fn applies the write. It may run more than once (when another op
	// of the same batch fails), so it must set its results afresh on
	// every run. A nil fn is a Ping: answered, never committed.
	fn func(w *wtx) error
	// after, if set, runs in the commit goroutine once the commit is
	// durable, before the caller is told: it mirrors the change into
	// memory (the suppression set).
	after func()
	done  chan error
}

// write hands fn to the commit goroutine and waits for the group commit
// that includes it. If ctx ends while waiting, ctx.Err() is returned but
// the write may still commit.
func (q *Queue) write(ctx context.Context, fn func(w *wtx) error, after func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return q.submit(ctx, &op{fn: fn, after: after, done: make(chan error, 1)})
}

// submit hands o to the commit goroutine and waits for its answer.
func (q *Queue) submit(ctx context.Context, o *op) error {
	select {
	case q.ops <- o:
	case <-q.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-o.done:
		return err
	case <-q.loopDone:
		// The loop may have answered just before it stopped.
		select {
		case err := <-o.done:
			return err
		default:
			return ErrClosed
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitLoop is the only writer. It takes whatever is waiting when the
// previous commit ends and commits it together: while one fsync runs,
// the next batch builds up, so the batch size adapts to the load with no
// timer (bbolt's Batch waits up to MaxBatchDelay even when alone).
func (q *Queue) commitLoop() {
	defer close(q.loopDone)
	for {
		select {
		case <-q.quit:
			q.failPending()
			return
		case o := <-q.ops:
			if o.fn == nil { // Ping
				o.done <- nil
				continue
			}
			batch, pings := []*op{o}, []*op(nil)
		collect:
			for len(batch) < maxBatch {
				select {
				case o := <-q.ops:
					if o.fn == nil {
						pings = append(pings, o)
						continue
					}
					batch = append(batch, o)
				default:
					break collect
				}
			}
			q.runBatch(batch)
			for _, p := range pings {
				p.done <- nil
			}
		}
	}
}

func (q *Queue) failPending() {
	for {
		select {
		case o := <-q.ops:
			o.done <- ErrClosed
		default:
			return
		}
	}
}

func (q *Queue) runBatch(batch []*op) {
	if q.db == nil {
		if err := q.reopen(); err != nil {
			for _, o := range batch {
				o.done <- storageErr("reopen", err)
			}
			return
		}
	}
	feed := q.feedOn()
	for len(batch) > 0 {
		failed, failErr := -1, error(nil)
		now := q.now()
		var unlink []string
		var heads map[string]DueHead
		var ev *evState
		if c := q.evCfg.Load(); c.on() {
			ev = &evState{cfg: *c}
		}
		err := q.db.Update(func(tx *bbolt.Tx) error {
			w := newWtx(tx, now)
			w.log = q.log
			if ev != nil {
				*ev = evState{cfg: ev.cfg}
				w.ev = ev
			}
			if feed {
				w.dueTouched = map[string]struct{}{}
			}
			defer func() { unlink = w.unlink }()
			for i, o := range batch {
				err := o.fn(w)
				if err == nil {
					err = w.flush()
				}
				if err != nil {
					failed, failErr = i, err
					return errOpFailed
				}
			}
			// The events of the whole batch, in its transaction: no
			// fsync of their own.
			if err := w.flushEvents(); err != nil {
				return err
			}
			var err error
			heads, err = w.dueHeads()
			return err
		})
		if failed >= 0 {
			batch[failed].done <- failErr
			batch = slices.Delete(batch, failed, failed+1)
			continue
		}
		if err != nil {
			serr := storageErr("commit", err)
			q.log.Error("queue: commit failed; reopening the file", "err", err, "ops", len(batch))
			for _, o := range batch {
				o.done <- serr
			}
			// After a failed write or fsync the in-memory state of bbolt
			// (its mmap and meta pages) may no longer match the file, and
			// a failed mmap leaves the DB unusable. Reopening re-reads
			// the file's valid meta page, so the queue works again once
			// the disk does.
			if rerr := q.reopen(); rerr != nil {
				q.log.Error("queue: reopen after failed commit", "err", rerr)
			}
			return
		}
		q.commits.Add(1)
		// Before the writers are answered: a caller finds its own change
		// in the feed when its write returns.
		q.publishDue(heads)
		// Only now is it certain that no record needs these files.
		q.removeSpooled(unlink)
		if ev != nil && ev.wrote {
			q.eventsCommitted(ev.drop)
		}
		for _, o := range batch {
			if o.after != nil {
				o.after()
			}
			o.done <- nil
		}
		return
	}
}

// reopen closes and reopens the file. Only the commit goroutine calls it.
func (q *Queue) reopen() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.db != nil {
		if err := q.db.Close(); err != nil {
			q.log.Warn("queue: close before reopen", "err", err)
		}
		q.db = nil
	}
	db, err := q.openDB()
	if err != nil {
		q.dbErr = err
		return err
	}
	q.db, q.dbErr = db, nil
	q.log.Info("queue: reopened file", "path", q.opts.Path)
	return nil
}
