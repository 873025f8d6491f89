package scheduler

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sluice/config"
	"sluice/internal/fakeclock"
	"sluice/policy"
	"sluice/queue"
	"sluice/reply"
)

// fakeQueue is the scheduler's Queue with scripted failures. Like the
// real queue, a write with a done context fails with the context's error.
type fakeQueue struct {
	mu sync.Mutex
	// updateErrs and bodyErrs and enqueueErrs fail the next calls, in
	// order; then the calls succeed.
	updateErrs, bodyErrs, enqueueErrs []error
	// bodies holds the originals (a real queue: *queue.Body has no
	// public constructor).
	bodies                 *queue.Queue
	updates                [][]queue.Update
	updateCalls, bodyCalls int
	dsns                   [][]byte
	// events is the order of the successful writes: "dsn", "update".
	events []string
	// onUpdate runs at each Update call, before its result.
	onUpdate func(call int)
}

func (f *fakeQueue) WatchDue() (queue.DueWatch, map[string]time.Time, error) {
	return queue.NewHandFeed(), nil, nil
}
func (f *fakeQueue) LeaseDue(time.Time, []queue.LeaseReq) ([][]queue.Item, error) { return nil, nil }
func (f *fakeQueue) Reclaim(time.Time, func(string, int) bool) (int, time.Time, error) {
	return 0, time.Time{}, nil
}
func (f *fakeQueue) Suppress(string, string) error { return nil }
func (f *fakeQueue) ReturnLeases(time.Time, string, func(string, int) bool) (int, error) {
	return 0, nil
}

func pop(errs *[]error) error {
	if len(*errs) == 0 {
		return nil
	}
	err := (*errs)[0]
	*errs = (*errs)[1:]
	return err
}

func (f *fakeQueue) OpenBody(id string) (*queue.Body, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bodyCalls++
	if err := pop(&f.bodyErrs); err != nil {
		return nil, err
	}
	return f.bodies.OpenBody(id)
}

func (f *fakeQueue) Update(ctx context.Context, ups []queue.Update) error {
	f.mu.Lock()
	f.updateCalls++
	call, hook := f.updateCalls, f.onUpdate
	f.mu.Unlock()
	if hook != nil {
		hook(call)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := pop(&f.updateErrs); err != nil {
		return err
	}
	f.updates = append(f.updates, ups)
	f.events = append(f.events, "update")
	return nil
}

func (f *fakeQueue) Enqueue(ctx context.Context, m queue.NewMessage) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := pop(&f.enqueueErrs); err != nil {
		return "", err
	}
	f.dsns = append(f.dsns, m.Body)
	f.events = append(f.events, "dsn")
	return fmt.Sprintf("DSN%013d", len(f.dsns)), nil
}

// newUnitScheduler returns a scheduler on fq whose retry waits return at
// once; waits records what they asked for.
func newUnitScheduler(t *testing.T, fq *fakeQueue) (s *Scheduler, waits *[]time.Duration) {
	t.Helper()
	clk := fakeclock.New()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	po := policy.OptionsFrom(config.Default())
	po.Now, po.Logger, po.GroupBy = clk.Now, log, "domain"
	pol, err := policy.New(po)
	if err != nil {
		t.Fatal(err)
	}
	so := testOptions(fq, pol, &fakeOutbound{}, log) // finish never dials
	so.Clock = clk
	s = mustNew(t, so)
	var mu sync.Mutex
	waits = &[]time.Duration{}
	s.after = func(d time.Duration) <-chan time.Time {
		mu.Lock()
		*waits = append(*waits, d)
		mu.Unlock()
		c := make(chan time.Time, 1)
		c <- clk.Now()
		return c
	}
	return s, waits
}

const original = "Subject: the original\r\nMessage-ID: <orig@src.test>\r\n\r\nhello\r\n"

// leasedJob is one message to two recipients at dest.test, leased; its
// body is in fq.bodies.
func leasedJob(t *testing.T, s *Scheduler, fq *fakeQueue) *job {
	t.Helper()
	qo := queueOptions(filepath.Join(t.TempDir(), "queue.db"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	qo.NoSync = true
	q, err := queue.Open(qo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	fq.bodies = q
	id, err := q.Enqueue(context.Background(), queue.NewMessage{From: "sender@src.test", Rcpts: []string{"a@dest.test", "b@dest.test"}, Body: []byte(original)})
	if err != nil {
		t.Fatal(err)
	}
	j := &job{id: id, from: "sender@src.test", domain: "dest.test", received: fakeclock.Start}
	for i, a := range []string{"a@dest.test", "b@dest.test"} {
		j.items = append(j.items, queue.Item{ID: j.id, Rcpt: i, Addr: a, Domain: "dest.test", From: j.from, Received: j.received})
	}
	s.leases.add(j.items)
	return j
}

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

var errEIO = fmt.Errorf("queue: commit: %w", syscall.EIO)

// TestFinishRetriesFailingUpdate (issue 9 item 2): an outcome whose
// commit fails is kept and retried with growing waits until it commits,
// with a context of its own (the session's is already cancelled here, as
// at shutdown), and its leases stay held until then.
func TestFinishRetriesFailingUpdate(t *testing.T) {
	t.Parallel()
	fq := &fakeQueue{updateErrs: []error{errEIO, errEIO, errEIO}}
	s, waits := newUnitScheduler(t, fq)
	j := leasedJob(t, s, fq)
	fq.onUpdate = func(int) {
		for _, it := range j.items {
			if !s.leases.held(it.ID, it.Rcpt) {
				t.Errorf("lease %s/%d not held while its outcome is pending", it.ID, it.Rcpt)
			}
		}
	}
	ok := reply.Reply{Stage: reply.StageDataEnd, Code: 250, Enhanced: "2.0.0", Text: "ok"}
	s.finish(cancelled(), "dest.test", j, "mx.dest.test[127.0.0.1]:25", false, sameReply(ok, 2))

	if fq.updateCalls != 4 || len(fq.updates) != 1 {
		t.Fatalf("Update called %d times, %d committed; want 4 calls, 1 commit", fq.updateCalls, len(fq.updates))
	}
	for _, u := range fq.updates[0] {
		if u.State != queue.StateSent {
			t.Errorf("recorded %+v, want sent", u)
		}
	}
	if len(*waits) != 3 || !((*waits)[0] < (*waits)[2]) {
		t.Errorf("retry waits = %v, want 3 growing waits", *waits)
	}
	if n := s.leases.len(); n != 0 {
		t.Errorf("%d leases still held after the outcome committed", n)
	}
}

// TestFinishGivesUpAtShutdown: the retries end when the scheduler stops
// (after one last try), leaving the leases to the next start.
func TestFinishGivesUpAtShutdown(t *testing.T) {
	t.Parallel()
	fq := &fakeQueue{}
	for range 100 {
		fq.updateErrs = append(fq.updateErrs, errEIO)
	}
	s, _ := newUnitScheduler(t, fq)
	j := leasedJob(t, s, fq)
	waiting := make(chan struct{}, 1)
	s.after = func(time.Duration) <-chan time.Time { // only shutdown ends a wait
		waiting <- struct{}{}
		return nil
	}
	go func() {
		<-waiting
		close(s.stopped)
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		ok := reply.Reply{Stage: reply.StageDataEnd, Code: 250, Text: "ok"}
		s.finish(context.Background(), "dest.test", j, "mx", false, sameReply(ok, 2))
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("finish still retrying after shutdown")
	}
	if fq.updateCalls != 2 {
		t.Errorf("Update called %d times, want 2 (the try that failed, one after shutdown)", fq.updateCalls)
	}
}

// TestBounceKeepsTheOriginal (issue 9 item 25): a transient failure to
// read the original does not produce a DSN without it, nor record the
// bounce: both wait until the DSN is queued complete.
func TestBounceKeepsTheOriginal(t *testing.T) {
	t.Parallel()
	fq := &fakeQueue{
		bodyErrs:    []error{errEIO, errEIO},
		enqueueErrs: []error{errEIO},
	}
	s, _ := newUnitScheduler(t, fq)
	j := leasedJob(t, s, fq)
	unknown := reply.Reply{Stage: reply.StageRcpt, Code: 550, Enhanced: "5.1.1", Text: "no such user"}
	s.finish(context.Background(), "dest.test", j, "mx", false, sameReply(unknown, 2))

	if len(fq.dsns) != 1 {
		t.Fatalf("%d DSNs queued, want 1", len(fq.dsns))
	}
	if !strings.Contains(string(fq.dsns[0]), "Subject: the original") {
		t.Errorf("the DSN lost the original:\n%s", fq.dsns[0])
	}
	if got := strings.Join(fq.events, ","); got != "dsn,update" {
		t.Errorf("writes = %s, want the DSN queued before the bounce is recorded", got)
	}
	if fq.bodyCalls != 3 {
		t.Errorf("body read %d times, want 3 (two failures, then the read, kept for the retried DSN write)", fq.bodyCalls)
	}
	for _, u := range fq.updates[0] {
		if u.State != queue.StateBounced {
			t.Errorf("recorded %+v, want bounced", u)
		}
	}
}

// TestBounceSaysTheOriginalIsGone: a body that is truly gone is not
// waited for; the DSN says so in its human-readable part.
func TestBounceSaysTheOriginalIsGone(t *testing.T) {
	t.Parallel()
	fq := &fakeQueue{bodyErrs: []error{fmt.Errorf("queue: %w: X", queue.ErrNotFound)}}
	s, _ := newUnitScheduler(t, fq)
	j := leasedJob(t, s, fq)
	unknown := reply.Reply{Stage: reply.StageRcpt, Code: 550, Enhanced: "5.1.1", Text: "no such user"}
	s.finish(context.Background(), "dest.test", j, "mx", false, sameReply(unknown, 2))
	if len(fq.dsns) != 1 || len(fq.updates) != 1 {
		t.Fatalf("%d DSNs, %d updates; want 1 and 1", len(fq.dsns), len(fq.updates))
	}
	if !strings.Contains(strings.ReplaceAll(string(fq.dsns[0]), "=\r\n", ""), "could not be returned with this report") {
		t.Errorf("the DSN does not say the original is gone:\n%s", fq.dsns[0])
	}
}

// TestOutcomeCarriesEventDetail (issue 13): the update of an outcome
// carries what its event needs beyond the record: the bounce category
// derived from the classifier's verdict, the DSN status and whether the
// session was encrypted.
func TestOutcomeCarriesEventDetail(t *testing.T) {
	t.Parallel()
	fq := &fakeQueue{}
	s, _ := newUnitScheduler(t, fq)
	j := leasedJob(t, s, fq)
	j.tls = true
	unknown := reply.Reply{Stage: reply.StageRcpt, Code: 550, Enhanced: "5.1.1", Text: "no such user"}
	full := reply.Reply{Stage: reply.StageRcpt, Code: 552, Enhanced: "5.2.2", Text: "mailbox full"}
	s.finish(context.Background(), "dest.test", j, "mx", false, []reply.Reply{unknown, full})
	if len(fq.updates) != 1 || len(fq.updates[0]) != 2 {
		t.Fatalf("updates %+v", fq.updates)
	}
	want := []queue.EventDetail{{TLS: true, DSN: "5.1.1", Category: "user-unknown"}, {TLS: true, DSN: "5.2.2", Category: "mailbox-full"}}
	for i, u := range fq.updates[0] {
		if u.Detail != want[i] {
			t.Errorf("recipient %d: detail %+v, want %+v", i, u.Detail, want[i])
		}
	}
}
