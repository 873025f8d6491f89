package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/config"
	"sluice/policy"
	"sluice/queue"
	"sluice/relay/outbound"
	"sluice/reply"
)

// testOptions are the daemon's options from the default config
// (OptionsFrom(config.Default())) with the given seams, the test hostname
// and a one-hour queue lifetime; New fills nothing else in.
func testOptions(q Queue, pol *policy.Policy, out Outbound, log *slog.Logger) Options {
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

// memQueue is an in-memory Queue: recipients due in insertion order,
// final updates recorded. Every message has the same body, stored once
// in a real queue (a queue.Body comes only from there).
type memQueue struct {
	bodies *queue.Queue
	bodyID string

	mu    sync.Mutex
	due   []queue.Item
	final map[string]queue.State // id/rcpt -> final state
	n     int
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
	return &memQueue{bodies: bq, bodyID: id, final: map[string]queue.State{}}
}

// add queues one message with one recipient, due at at.
func (q *memQueue) add(from, rcpt string, at time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.n++
	id := fmt.Sprintf("m%d", q.n)
	q.due = append(q.due, queue.Item{ID: id, Addr: rcpt, Domain: rcpt[strings.LastIndexByte(rcpt, '@')+1:], From: from, Received: at, NextAttempt: at})
}

func (q *memQueue) Lease(now time.Time, max int) ([]queue.Item, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out, rest []queue.Item
	for _, it := range q.due {
		if len(out) < max && !it.NextAttempt.After(now) {
			out = append(out, it)
		} else {
			rest = append(rest, it)
		}
	}
	q.due = rest
	return out, nil
}

func (q *memQueue) NextDue() (time.Time, bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var t time.Time
	for _, it := range q.due {
		if t.IsZero() || it.NextAttempt.Before(t) {
			t = it.NextAttempt
		}
	}
	return t, !t.IsZero(), nil
}

func (q *memQueue) OpenBody(string) (*queue.Body, error) { return q.bodies.OpenBody(q.bodyID) }

func (q *memQueue) Update(_ context.Context, ups []queue.Update) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, u := range ups {
		if u.State == queue.StateQueued {
			// Only the scheduler's own leases come back here; the test
			// item's address is not needed again.
			q.due = append(q.due, queue.Item{ID: u.ID, Rcpt: u.Rcpt, NextAttempt: u.NextAttempt})
			continue
		}
		q.final[fmt.Sprintf("%s/%d", u.ID, u.Rcpt)] = u.State
	}
	return nil
}

func (q *memQueue) Enqueue(context.Context, queue.NewMessage) (string, error) { return "dsn", nil }
func (q *memQueue) Suppress(string, string) error                             { return nil }

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
