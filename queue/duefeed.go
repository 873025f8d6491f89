package queue

import (
	"context"
	"errors"
	"sync"
	"time"
)

// The due feed tells the scheduler which domains' heads (earliest due
// times) changed, and to what, without a scan: every transaction notes
// the domains whose due entries it touched, reads their heads (one seek
// each) before it commits, and publishes them after the commit, before
// the callers that wrote are answered. A caller of LeaseDue therefore
// finds its own change (or a later one) in the feed when LeaseDue
// returns.

// DueHead is a domain's head after a commit.
type DueHead struct {
	At  time.Time // earliest NextAttempt of the domain's queued recipients
	Due bool      // false: the domain has no queued recipient left
	tx  uint64
}

// DueWatch receives the due feed. Create it with WatchDue.
type DueWatch interface {
	// C receives a value (it has room for one) after a commit changed a
	// head; Take then returns the changes.
	C() <-chan struct{}
	// Take returns the domains whose head changed since the last Take
	// (or the snapshot), each with its latest head.
	Take() map[string]DueHead
	// Close stops the feed.
	Close()
}

type dueWatch struct {
	q     *Queue
	since uint64 // transactions up to this one are in WatchDue's snapshot
	c     <-chan struct{}
}

type dueFeed struct {
	mu      sync.Mutex
	on      bool
	ch      chan struct{}
	changes map[string]DueHead
}

// errDueWatched is returned by a second WatchDue.
var errDueWatched = errors.New("queue: the due feed already has a watcher")

// WatchDue starts the due feed and returns it with a snapshot of every
// domain's head (DueHeads). Every change committed after the snapshot
// comes through the feed; applying Take's entries over the snapshot, in
// the order they come, gives the current heads. One watcher at a time.
func (q *Queue) WatchDue() (DueWatch, map[string]time.Time, error) {
	f := &q.feed
	f.mu.Lock()
	if f.on {
		f.mu.Unlock()
		return nil, nil, errDueWatched
	}
	f.on, f.ch, f.changes = true, make(chan struct{}, 1), map[string]DueHead{}
	f.mu.Unlock()
	// A batch that began before the feed was on publishes nothing; the
	// empty write waits for it to commit (batches commit in order), so
	// the snapshot that follows includes it.
	if err := q.write(context.Background(), func(*wtx) error { return nil }, nil); err != nil {
		q.stopFeed()
		return nil, nil, err
	}
	heads, tx, err := q.DueHeads()
	if err != nil {
		q.stopFeed()
		return nil, nil, err
	}
	return &dueWatch{q: q, since: tx, c: f.ch}, heads, nil
}

func (w *dueWatch) C() <-chan struct{} { return w.c }

func (w *dueWatch) Take() map[string]DueHead {
	f := &w.q.feed
	f.mu.Lock()
	m := f.changes
	if len(m) == 0 {
		f.mu.Unlock()
		return nil
	}
	f.changes = map[string]DueHead{}
	f.mu.Unlock()
	for d, h := range m {
		if h.tx <= w.since {
			delete(m, d)
		}
	}
	return m
}

func (w *dueWatch) Close() { w.q.stopFeed() }

func (q *Queue) stopFeed() {
	f := &q.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	f.on, f.changes = false, nil
}

func (q *Queue) feedOn() bool {
	f := &q.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.on
}

// dueHeads reads, inside the transaction about to commit, the heads of
// the domains it touched.
func (w *wtx) dueHeads() (map[string]DueHead, error) {
	if len(w.dueTouched) == 0 {
		return nil, nil
	}
	b := w.b(bktDue)
	out := make(map[string]DueHead, len(w.dueTouched))
	for d := range w.dueTouched {
		t, ok, err := dueHead(b, d)
		if err != nil {
			return nil, err
		}
		out[d] = DueHead{At: t, Due: ok, tx: uint64(w.tx.ID())}
	}
	return out, nil
}

// publishDue hands a committed transaction's heads to the watcher.
func (q *Queue) publishDue(heads map[string]DueHead) {
	if len(heads) == 0 {
		return
	}
	f := &q.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.on {
		return
	}
	for d, h := range heads {
		f.changes[d] = h
	}
	select {
	case f.ch <- struct{}{}:
	default:
	}
}

// HandFeed is a DueWatch fed by Put rather than by commits: the due feed
// of a queue kept in memory (internal/sim's, the scheduler's test fakes).
type HandFeed struct {
	mu      sync.Mutex
	c       chan struct{}
	changes map[string]DueHead
}

// NewHandFeed returns an empty HandFeed.
func NewHandFeed() *HandFeed {
	return &HandFeed{c: make(chan struct{}, 1), changes: map[string]DueHead{}}
}

// Put records domain's new head and signals C.
func (w *HandFeed) Put(domain string, h DueHead) {
	w.mu.Lock()
	w.changes[domain] = h
	w.mu.Unlock()
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// C implements DueWatch.
func (w *HandFeed) C() <-chan struct{} { return w.c }

// Close implements DueWatch.
func (w *HandFeed) Close() {}

// Take implements DueWatch.
func (w *HandFeed) Take() map[string]DueHead {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.changes
	w.changes = map[string]DueHead{}
	return m
}
