package scheduler

import (
	"sync"

	"sluice/queue"
)

// leaseRef names one leased recipient.
type leaseRef struct {
	id   string
	rcpt int
}

// heldLeases is every lease this scheduler still owns: mail waiting in
// memory, in a session, or an outcome whose commit is being retried. The
// queue's reaper asks it (Queue.Reclaim) before returning an expired
// lease to the due index, so a lease is reclaimed only when nobody here
// can still record its outcome: a late outcome always wins, and a
// recipient is never delivered twice by one process. It has its own
// mutex because the reaper calls it from the queue's commit goroutine,
// which must never wait for Scheduler.mu (pump holds that lock while
// policy persists through the queue).
type heldLeases struct {
	mu sync.Mutex
	m  map[leaseRef]struct{}
}

func (h *heldLeases) add(items []queue.Item) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = make(map[leaseRef]struct{}, len(items))
	}
	for _, it := range items {
		h.m[leaseRef{it.ID, it.Rcpt}] = struct{}{}
	}
}

func (h *heldLeases) drop(items []queue.Item) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, it := range items {
		delete(h.m, leaseRef{it.ID, it.Rcpt})
	}
}

// held is the Queue.Reclaim callback.
func (h *heldLeases) held(id string, rcpt int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.m[leaseRef{id, rcpt}]
	return ok
}

func (h *heldLeases) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.m)
}

// Holds reports whether this scheduler still uses the lease of recipient
// rcpt of message id (waiting in memory, in a session, or an outcome
// being recorded). Everything else leased is an orphan that
// queue.ReturnLeases may hand back (`queue flush --force`). Safe for
// concurrent use; it never calls the queue.
func (s *Scheduler) Holds(id string, rcpt int) bool { return s.leases.held(id, rcpt) }
