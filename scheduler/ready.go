package scheduler

import (
	"container/heap"
	"time"

	"sluice/queue"
)

// domain is a recipient domain with queued work: what the queue's due
// feed says of it (its head, the earliest due time of its recipients) and
// the destination policy groups it into. Nothing per message is kept: a
// domain with a million deferred recipients is one of these.
// Owned by the loop.
type domain struct {
	name      string
	head      time.Time
	dest      *dest     // nil until grouped
	mapped    time.Time // when the grouping was last confirmed
	resolving bool      // an MX lookup for it is in flight
	hidx      int       // index in dest.domains, or in Scheduler.unmapped while dest is nil; -1: in neither
}

// dest is the scheduler's view of one destination: its domains, when the
// loop serves it next, and a small ready queue of leased jobs for its
// sessions. It exists while it has domains with work, jobs or sessions.
type dest struct {
	name string

	// Owned by the loop.
	domains domainHeap // by head
	askAt   time.Time  // policy said: ask again then (zero: no time limit)
	capWait bool       // policy said: ask again after a session ends
	wake    time.Time  // when the loop serves it next (in Scheduler.wakes)
	hidx    int        // index in Scheduler.wakes; -1: not in it
	queued  bool       // in Scheduler.pending or leasing: a lease for it is coming
	want    int        // jobs asked for in that lease
	// promised is the session slots (MaxSessions) kept for the sessions
	// that may start when that lease's jobs come.
	promised int
	slot     bool // in Scheduler.slotQueue

	// Guarded by Scheduler.mu.
	ready    []*job // leased, waiting for a session, in due order
	sessions int    // open sessions (idle ones included)
	idle     int    // sessions waiting for a job
	// dry: no refill is coming, so a session that finds no job stops
	// waiting for one (and idles for ConnectionIdle, or ends).
	dry bool
	// arrived, when not nil, is closed (and cleared) when jobs are added
	// to ready, the destination runs dry, a slot is wanted elsewhere or
	// the scheduler stops: it wakes the waiting sessions.
	arrived chan struct{}
}

// job is one message's recipients at one domain: one SMTP transaction.
type job struct {
	id, from, domain string
	received         time.Time
	smtputf8         bool // the message asked for SMTPUTF8 at MAIL
	items            []queue.Item
	// tls: the session that carried the attempt was encrypted (for the
	// delivered event).
	tls bool
}

// jobsOf groups leased items by message and domain, keeping the lease
// order (due order): a message's items at one domain come together.
func jobsOf(items []queue.Item) []*job {
	var out []*job
	for _, it := range items {
		if n := len(out); n > 0 && out[n-1].id == it.ID && out[n-1].domain == it.Domain {
			out[n-1].items = append(out[n-1].items, it)
			continue
		}
		out = append(out, &job{id: it.ID, from: it.From, domain: it.Domain, received: it.Received, smtputf8: it.SMTPUTF8, items: []queue.Item{it}})
	}
	return out
}

// wakeLocked wakes every session waiting at d. Caller holds s.mu.
func (d *dest) wakeLocked() {
	if d.arrived != nil {
		close(d.arrived)
		d.arrived = nil
	}
}

// head is the earliest head of d's domains (ok=false: none has work).
func (d *dest) head() (time.Time, bool) {
	if len(d.domains) == 0 {
		return time.Time{}, false
	}
	return d.domains[0].head, true
}

// domainHeap orders domains by head.
type domainHeap []*domain

func (h domainHeap) Len() int { return len(h) }
func (h domainHeap) Less(i, j int) bool {
	// Equal heads go by name: the order of a destination's domains does
	// not depend on when their groupings came.
	if c := h[i].head.Compare(h[j].head); c != 0 {
		return c < 0
	}
	return h[i].name < h[j].name
}
func (h domainHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].hidx = i; h[j].hidx = j }
func (h *domainHeap) Push(x any)   { d := x.(*domain); d.hidx = len(*h); *h = append(*h, d) }
func (h *domainHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	d.hidx = -1
	return d
}

// put adds dm to h or moves it to its place after its head changed.
func (h *domainHeap) put(dm *domain) {
	if dm.hidx >= 0 && dm.hidx < len(*h) && (*h)[dm.hidx] == dm {
		heap.Fix(h, dm.hidx)
		return
	}
	heap.Push(h, dm)
}

// remove takes dm out of h, if it is there.
func (h *domainHeap) remove(dm *domain) {
	if dm.hidx >= 0 && dm.hidx < len(*h) && (*h)[dm.hidx] == dm {
		heap.Remove(h, dm.hidx)
	}
	dm.hidx = -1
}

// destHeap orders destinations by wake.
type destHeap []*dest

func (h destHeap) Len() int           { return len(h) }
func (h destHeap) Less(i, j int) bool { return h[i].wake.Before(h[j].wake) }
func (h destHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].hidx = i; h[j].hidx = j }
func (h *destHeap) Push(x any)        { d := x.(*dest); d.hidx = len(*h); *h = append(*h, d) }
func (h *destHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	d.hidx = -1
	return d
}
