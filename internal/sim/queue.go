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
// memory. Each domain's queued recipients are a heap by due time (then
// by enqueue order, so that runs are repeatable); leased ones sit in a
// map until their outcome; final states are counted. Every commit
// (LeaseDue, Update) takes commit of virtual time, standing for the
// real queue's group commit and its fsync. A lease never expires: the
// scheduler in the simulator never loses one.
type memQueue struct {
	commit time.Duration
	body   []byte

	mu     sync.Mutex
	due    map[string]*itemHeap
	active map[leaseKey]queue.Item
	final  map[leaseKey]queue.State
	seq    uint64
	watch  *queue.HandFeed
	sent   int // recipients final as sent
	done   int // recipients final, whatever the state
	total  int // recipients enqueued
}

type leaseKey struct {
	id   string
	rcpt int
}

func newMemQueue(commit time.Duration, body []byte) *memQueue {
	return &memQueue{commit: commit, body: body, due: map[string]*itemHeap{},
		active: map[leaseKey]queue.Item{}, final: map[leaseKey]queue.State{}}
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

func (q *memQueue) insertLocked(it queue.Item) {
	h := q.due[it.Domain]
	if h == nil {
		h = &itemHeap{}
		q.due[it.Domain] = h
	}
	q.seq++
	heap.Push(h, queued{it, q.seq})
	q.publishLocked(it.Domain)
}

func (q *memQueue) publishLocked(domain string) {
	if q.watch == nil {
		return
	}
	hd := queue.DueHead{}
	if h := q.due[domain]; h != nil && h.Len() > 0 {
		hd = queue.DueHead{At: (*h)[0].NextAttempt, Due: true}
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
	for d, h := range q.due {
		if h.Len() > 0 {
			heads[d] = (*h)[0].NextAttempt
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
			h := q.due[d]
			for h != nil && h.Len() > 0 && jobs < rq.MaxJobs && !(*h)[0].NextAttempt.After(now) {
				it := heap.Pop(h).(queued).Item
				// A message's recipients due together are one job.
				if n := len(out[i]); n == 0 || out[i][n-1].ID != it.ID {
					jobs++
				}
				out[i] = append(out[i], it)
				q.active[leaseKey{it.ID, it.Rcpt}] = it
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
