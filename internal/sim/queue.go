package sim

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
	"time"

	"sluice/queue"
)

// memQueue is the simulator's queue: the scheduler's Queue seam over
// memory. Each domain's queued recipients are two heaps by due time
// (then by enqueue order, so that runs are repeatable), one per lane of
// the real queue's due index: first attempts and retries, which LeaseDue
// serves in turn, one job each, as queue.LeaseDue does; leased ones sit in a
// map until their outcome; final states are counted. Every commit
// (LeaseDue, Update) takes commit of virtual time, standing for the
// real queue's group commit and its fsync. A lease never expires: the
// scheduler in the simulator never loses one.
type memQueue struct {
	commit time.Duration
	body   []byte

	mu     sync.Mutex
	due    map[string]*lanes
	active map[leaseKey]queue.Item
	final  map[leaseKey]queue.State
	seq    uint64
	watch  *queue.HandFeed
	sent   int // recipients final as sent
	done   int // recipients final, whatever the state
	total  int // recipients enqueued
	// deferred holds when each recipient waiting for a retry was
	// deferred; untried is the longest time from a deferral to the
	// recipient's next attempt (the issue's "no recipient left untried
	// for longer than retry_max").
	deferred map[leaseKey]time.Time
	untried  time.Duration
}

type leaseKey struct {
	id   string
	rcpt int
}

func newMemQueue(commit time.Duration, body []byte) *memQueue {
	return &memQueue{commit: commit, body: body, due: map[string]*lanes{},
		active: map[leaseKey]queue.Item{}, final: map[leaseKey]queue.State{}, deferred: map[leaseKey]time.Time{}}
}

// add queues one message to rcpts at domain, due (and received) at at.
func (q *memQueue) add(from string, rcpts []string, domain string, at time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	id := fmt.Sprintf("m%06d", q.total)
	for i, r := range rcpts {
		q.insertLocked(queue.Item{ID: id, Rcpt: i, Addr: r, Domain: domain, From: from, Received: at, NextAttempt: at})
	}
	q.total += len(rcpts)
}

// lanes is one domain's queued recipients: [0] never tried, [1] tried
// before; retryLast: the last job leased came from [1].
type lanes struct {
	h         [2]itemHeap
	retryLast bool
}

func laneOf(it queue.Item) int {
	if it.Attempts > 0 {
		return 1
	}
	return 0
}

// head is the earlier of the lanes' heads.
func (l *lanes) head() (time.Time, bool) {
	var t time.Time
	ok := false
	for i := range l.h {
		if l.h[i].Len() > 0 && (!ok || l.h[i][0].NextAttempt.Before(t)) {
			t, ok = l.h[i][0].NextAttempt, true
		}
	}
	return t, ok
}

// next is the lane whose job goes next at now, or -1 when none is due:
// retries first, then the lanes in turn.
func (l *lanes) next(now time.Time) int {
	due := func(i int) bool { return l.h[i].Len() > 0 && !l.h[i][0].NextAttempt.After(now) }
	pick := 1
	if l.retryLast {
		pick = 0
	}
	if !due(pick) {
		pick ^= 1
	}
	if !due(pick) {
		return -1
	}
	return pick
}

func (q *memQueue) insertLocked(it queue.Item) {
	l := q.due[it.Domain]
	if l == nil {
		l = &lanes{}
		q.due[it.Domain] = l
	}
	q.seq++
	heap.Push(&l.h[laneOf(it)], queued{it, q.seq})
	q.publishLocked(it.Domain)
}

func (q *memQueue) publishLocked(domain string) {
	if q.watch == nil {
		return
	}
	hd := queue.DueHead{}
	if l := q.due[domain]; l != nil {
		if t, ok := l.head(); ok {
			hd = queue.DueHead{At: t, Due: true}
		}
	}
	q.watch.Put(domain, hd)
}

// finished reports how many recipients are final and how many were sent.
func (q *memQueue) finished() (done, sent, total int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.done, q.sent, q.total
}

func (q *memQueue) WatchDue() (queue.DueWatch, map[string]time.Time, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.watch = queue.NewHandFeed()
	heads := map[string]time.Time{}
	for d, l := range q.due {
		if t, ok := l.head(); ok {
			heads[d] = t
		}
	}
	return q.watch, heads, nil
}

func (q *memQueue) LeaseDue(now time.Time, reqs []queue.LeaseReq) ([][]queue.Item, error) {
	q.sleep()
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([][]queue.Item, len(reqs))
	for i, rq := range reqs {
		jobs := 0
		for _, d := range rq.Domains {
			l := q.due[d]
			for l != nil && jobs < rq.MaxJobs {
				lane := l.next(now)
				if lane < 0 {
					break
				}
				// A message's recipients due together are one job.
				h := &l.h[lane]
				id := (*h)[0].ID
				for h.Len() > 0 && (*h)[0].ID == id && !(*h)[0].NextAttempt.After(now) {
					it := heap.Pop(h).(queued).Item
					out[i] = append(out[i], it)
					q.active[leaseKey{it.ID, it.Rcpt}] = it
				}
				jobs++
				l.retryLast = lane == 1
			}
			q.publishLocked(d)
		}
	}
	return out, nil
}

func (q *memQueue) OpenBody(string) (*queue.Body, error) { return queue.BodyOf(q.body), nil }

func (q *memQueue) Update(_ context.Context, ups []queue.Update) error {
	q.sleep()
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, u := range ups {
		k := leaseKey{u.ID, u.Rcpt}
		it, ok := q.active[k]
		if !ok {
			continue
		}
		delete(q.active, k)
		if a := u.Attempt; a != nil {
			if at, ok := q.deferred[k]; ok {
				q.untried = max(q.untried, a.At.Sub(at))
				delete(q.deferred, k)
			}
			if u.State == queue.StateQueued {
				q.deferred[k] = a.At
			}
		}
		if u.State == queue.StateQueued {
			it.NextAttempt = u.NextAttempt
			if u.Attempt != nil {
				it.Attempts++
			}
			q.insertLocked(it)
			continue
		}
		q.final[k] = u.State
		q.done++
		if u.State == queue.StateSent {
			q.sent++
		}
	}
	return nil
}

// maxUntried is the longest time a recipient waited from a deferral to
// its next attempt, counting those still waiting at now.
func (q *memQueue) maxUntried(now time.Time) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.untried
	for _, at := range q.deferred {
		out = max(out, now.Sub(at))
	}
	return out
}

// sleep is one commit's worth of virtual time.
func (q *memQueue) sleep() {
	if q.commit > 0 {
		time.Sleep(q.commit)
	}
}

// Enqueue takes the DSNs of bounces: they go nowhere in the simulator.
func (q *memQueue) Enqueue(context.Context, queue.NewMessage) (string, error) { return "dsn", nil }
func (q *memQueue) Suppress(string, string) error                             { return nil }

func (q *memQueue) ReturnLeases(now time.Time, _ string, held func(string, int) bool) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for k, it := range q.active {
		if held(it.ID, it.Rcpt) {
			continue
		}
		delete(q.active, k)
		it.NextAttempt = now
		q.insertLocked(it)
		n++
	}
	return n, nil
}

func (q *memQueue) Reclaim(time.Time, func(string, int) bool) (int, time.Time, error) {
	return 0, time.Time{}, nil
}

type queued struct {
	queue.Item
	seq uint64
}

type itemHeap []queued

func (h itemHeap) Len() int { return len(h) }
func (h itemHeap) Less(i, j int) bool {
	if c := h[i].NextAttempt.Compare(h[j].NextAttempt); c != 0 {
		return c < 0
	}
	return h[i].seq < h[j].seq
}
func (h itemHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *itemHeap) Push(x any)   { *h = append(*h, x.(queued)) }
func (h *itemHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
