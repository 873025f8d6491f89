package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/config"
	"sluice/queue"
	"sluice/relay/outbound"
	"sluice/reply"
)

// testOptions are the daemon's options from the default config
// (OptionsFrom(config.Default())) with the given seams, the test hostname
// and a one-hour queue lifetime; New fills nothing else in.
func testOptions(q Queue, pol Policy, out Outbound, log *slog.Logger) Options {
	o := OptionsFrom(config.Default())
	o.Queue, o.Policy, o.Outbound, o.Logger = q, pol, out, log
	o.Hostname, o.MaxQueueLifetime = "sluice.test", time.Hour
	// Sessions end with their mail unless a test is about idling
	// (delivery.connection_idle): a lingering session would hold its
	// slot and keep its destination in memory past what a test counts.
	o.ConnectionIdle = 0
	return o
}

// queueOptions are the daemon's queue options from the default config,
// for a queue file at path.
func queueOptions(path string, log *slog.Logger) queue.Options {
	o := queue.OptionsFrom(config.Default())
	o.Path, o.Logger = path, log
	return o
}

func mustNew(t testing.TB, o Options) *Scheduler {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// memQueue is an in-memory Queue: each domain's recipients due in time
// order, final updates recorded, a due feed, and counts of what the
// scheduler read and wrote per domain (the cost of a paused destination
// is zero of both). Every message has the same body, stored once in a
// real queue (a queue.Body comes only from there).
type memQueue struct {
	bodies *queue.Queue
	bodyID string

	mu     sync.Mutex
	due    map[string][]queue.Item // domain -> queued recipients, by NextAttempt
	active map[string]queue.Item   // id/rcpt -> leased recipient
	final  map[string]queue.State  // id/rcpt -> final state
	n      int
	watch  *queue.HandFeed
	// What the scheduler cost: lease reads per domain, recipients leased
	// per domain, recipients written back to queued per domain, and
	// every LeaseDue and Update call.
	reads, leased, requeued map[string]int
	leaseCalls, updateCalls int
	// failLeases makes the next LeaseDue calls report a failure after
	// leasing, as a commit whose fsync failed but whose pages reached
	// the file does.
	failLeases int
}

func newMemQueue(t *testing.T) *memQueue {
	t.Helper()
	bq, err := queue.Open(queueOptions(filepath.Join(t.TempDir(), "bodies.db"), quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bq.Close() })
	id, err := bq.Enqueue(context.Background(), queue.NewMessage{From: "app@src.test", Rcpts: []string{"u@body.test"}, Body: []byte("Subject: t\r\n\r\nhello\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	return &memQueue{bodies: bq, bodyID: id, due: map[string][]queue.Item{}, active: map[string]queue.Item{},
		final: map[string]queue.State{}, reads: map[string]int{}, leased: map[string]int{}, requeued: map[string]int{}}
}

func itemKey(id string, rcpt int) string { return fmt.Sprintf("%s/%d", id, rcpt) }

// add queues one message with one recipient, due at at, and returns its ID.
func (q *memQueue) add(from, rcpt string, at time.Time) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.n++
	id := fmt.Sprintf("m%d", q.n)
	q.insertLocked(queue.Item{ID: id, Addr: rcpt, Domain: rcpt[strings.LastIndexByte(rcpt, '@')+1:], From: from, Received: at, NextAttempt: at})
	return id
}

func (q *memQueue) insertLocked(it queue.Item) {
	l := q.due[it.Domain]
	i := sort.Search(len(l), func(i int) bool { return l[i].NextAttempt.After(it.NextAttempt) })
	l = append(l, queue.Item{})
	copy(l[i+1:], l[i:])
	l[i] = it
	q.due[it.Domain] = l
	q.publishLocked(it.Domain)
}

// publishLocked tells the watcher the domain's head.
func (q *memQueue) publishLocked(domain string) {
	if q.watch == nil {
		return
	}
	h := queue.DueHead{}
	if l := q.due[domain]; len(l) > 0 {
		h = queue.DueHead{At: l[0].NextAttempt, Due: true}
	}
	q.watch.Put(domain, h)
}

func (q *memQueue) WatchDue() (queue.DueWatch, map[string]time.Time, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.watch = queue.NewHandFeed()
	heads := map[string]time.Time{}
	for d, l := range q.due {
		if len(l) > 0 {
			heads[d] = l[0].NextAttempt
		}
	}
	return q.watch, heads, nil
}

func (q *memQueue) LeaseDue(now time.Time, reqs []queue.LeaseReq) ([][]queue.Item, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.leaseCalls++
	out := make([][]queue.Item, len(reqs))
	for i, rq := range reqs {
		for _, d := range rq.Domains {
			q.reads[d]++
			l := q.due[d]
			n := 0
			for n < len(l) && len(out[i]) < rq.MaxJobs && !l[n].NextAttempt.After(now) {
				out[i] = append(out[i], l[n])
				q.active[itemKey(l[n].ID, l[n].Rcpt)] = l[n]
				n++
			}
			q.due[d] = l[n:]
			q.leased[d] += n
			q.publishLocked(d)
		}
	}
	if q.failLeases > 0 {
		q.failLeases--
		return nil, errors.New("queue: commit: input/output error")
	}
	return out, nil
}

func (q *memQueue) OpenBody(string) (*queue.Body, error) { return q.bodies.OpenBody(q.bodyID) }

func (q *memQueue) Update(_ context.Context, ups []queue.Update) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.updateCalls++
	for _, u := range ups {
		k := itemKey(u.ID, u.Rcpt)
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
			q.requeued[it.Domain]++
			q.insertLocked(it)
			continue
		}
		q.final[k] = u.State
	}
	return nil
}

func (q *memQueue) Enqueue(context.Context, queue.NewMessage) (string, error) { return "dsn", nil }
func (q *memQueue) Suppress(string, string) error                             { return nil }

// ReturnLeases hands back the leases held does not claim, due now.
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

// Reclaim: leases in memQueue never expire.
func (q *memQueue) Reclaim(time.Time, func(string, int) bool) (int, time.Time, error) {
	return 0, time.Time{}, nil
}

func (q *memQueue) sent() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, st := range q.final {
		if st == queue.StateSent {
			n++
		}
	}
	return n
}

// state returns the state of message id's only recipient.
func (q *memQueue) state(id string) queue.State {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := itemKey(id, 0)
	if st, ok := q.final[k]; ok {
		return st
	}
	if _, ok := q.active[k]; ok {
		return queue.StateActive
	}
	return queue.StateQueued
}

// cost returns what the scheduler read and wrote of domain.
func (q *memQueue) cost(domain string) (reads, leased, requeued int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.reads[domain], q.leased[domain], q.requeued[domain]
}

// fakeOutbound answers MX lookups from a table (default: mx.<domain>) and
// opens sessions that accept everything, after hold returns.
type fakeOutbound struct {
	mx   map[string][]string
	hold func(domain string)

	mu             sync.Mutex
	open, maxOpen  int
	lookups, dials int
}

func (f *fakeOutbound) MXHosts(_ context.Context, domain string) ([]string, error) {
	f.mu.Lock()
	f.lookups++
	f.mu.Unlock()
	if h, ok := f.mx[domain]; ok {
		return h, nil
	}
	return []string{"mx." + domain}, nil
}

func (f *fakeOutbound) Dial(_ context.Context, domain string) (Session, *reply.Reply) {
	f.mu.Lock()
	f.dials++
	f.open++
	f.maxOpen = max(f.maxOpen, f.open)
	f.mu.Unlock()
	return &fakeSession{f: f, domain: domain}, nil
}

func (f *fakeOutbound) peak() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxOpen
}

type fakeSession struct {
	f      *fakeOutbound
	domain string
	sent   int
}

func (s *fakeSession) Relay() string { return "mx." + s.domain + "[192.0.2.1]:25" }
func (s *fakeSession) Send(_ context.Context, d *outbound.Delivery) []reply.Reply {
	if s.f.hold != nil {
		s.f.hold(s.domain)
	}
	s.sent++
	return sameReply(reply.Reply{Stage: reply.StageDataEnd, Code: 250, Enhanced: "2.0.0", Text: "ok"}, len(d.Rcpts))
}
func (s *fakeSession) Usable() bool { return true }
func (s *fakeSession) DSN() bool    { return false }
func (s *fakeSession) SameNextHop(_ context.Context, domain string) bool {
	return domain == s.domain
}
func (s *fakeSession) Sent() int { return s.sent }
func (s *fakeSession) Close() error {
	s.f.mu.Lock()
	s.f.open--
	s.f.mu.Unlock()
	return nil
}
