package scheduler

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"sluice/config"
	"sluice/internal/fakeclock"
	"sluice/internal/syncbuf"
	"sluice/policy"
	"sluice/queue"
	"sluice/relay/outbound"
	"sluice/reply"
)

// scriptOutbound is an in-process Outbound: Dial and Send run scripted
// functions, so a test controls exactly when a delivery ends.
type scriptOutbound struct {
	mx   map[string][]string // domain -> MX hosts (absent: the domain itself)
	dial func(ctx context.Context, domain string) *reply.Reply
	send func(ctx context.Context, fs *scriptSession, d *outbound.Delivery) []reply.Reply
	dsn  bool // the sessions' next hop offers DSN (RFC 3461)

	mu       sync.Mutex
	dials    []string // domains dialled, in order
	sessions []*scriptSession
}

func (o *scriptOutbound) MXHosts(_ context.Context, domain string) ([]string, error) {
	if h, ok := o.mx[domain]; ok {
		return h, nil
	}
	return []string{domain}, nil
}

func (o *scriptOutbound) Dial(ctx context.Context, domain string) (Session, *reply.Reply) {
	o.mu.Lock()
	o.dials = append(o.dials, domain)
	o.mu.Unlock()
	if o.dial != nil {
		if r := o.dial(ctx, domain); r != nil {
			return nil, r
		}
	}
	fs := &scriptSession{o: o, domain: domain, usable: true}
	o.mu.Lock()
	o.sessions = append(o.sessions, fs)
	o.mu.Unlock()
	return fs, nil
}

func (o *scriptOutbound) dialCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.dials)
}

// scriptSession delivers everything with a 250 unless scriptOutbound.send
// says otherwise.
type scriptSession struct {
	o      *scriptOutbound
	domain string

	mu      sync.Mutex
	usable  bool
	closed  bool
	sent    int
	domains []string // recipient domains of each transaction carried
}

func (fs *scriptSession) Relay() string { return "fake[" + fs.domain + "]" }

func (fs *scriptSession) DSN() bool { return fs.o.dsn }

func (fs *scriptSession) Send(ctx context.Context, d *outbound.Delivery) []reply.Reply {
	fs.mu.Lock()
	fs.domains = append(fs.domains, domainOf(d.Rcpts[0]))
	fs.mu.Unlock()
	if fs.o.send != nil {
		return fs.o.send(ctx, fs, d)
	}
	fs.mu.Lock()
	fs.sent++
	fs.mu.Unlock()
	return sameReply(reply.Reply{Stage: reply.StageDataEnd, Code: 250, Enhanced: "2.0.0", Text: "ok"}, len(d.Rcpts))
}

// SameNextHop: the same domain, or the same MX host list.
func (fs *scriptSession) SameNextHop(ctx context.Context, domain string) bool {
	if domain == fs.domain {
		return true
	}
	a, _ := fs.o.MXHosts(ctx, fs.domain)
	b, _ := fs.o.MXHosts(ctx, domain)
	return slices.Equal(a, b)
}

func (fs *scriptSession) Usable() bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.usable && !fs.closed
}

func (fs *scriptSession) Sent() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.sent
}

func (fs *scriptSession) Close() error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.closed = true
	return nil
}

func domainOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == '@' {
			return addr[i+1:]
		}
	}
	return ""
}

// scriptRig is a scheduler on a real queue and policy with a scriptOutbound,
// all three on one fake clock (time moves only when the test says); Run's
// two contexts are the test's to cancel.
type scriptRig struct {
	t        *testing.T
	clk      *fakeclock.Clock
	q        *queue.Queue
	pol      *policy.Policy
	out      *scriptOutbound
	sched    *Scheduler
	logs     *syncbuf.Buffer
	stopLoop context.CancelFunc
	stopSess context.CancelFunc
	done     chan struct{}
}

func newScriptRig(t *testing.T, out *scriptOutbound, tweak func(*Options)) *scriptRig {
	t.Helper()
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	dir := t.TempDir()
	clk := fakeclock.New()
	qo := queueOptions(filepath.Join(dir, "queue.db"), log)
	qo.Now = clk.Now
	q, err := queue.Open(qo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	po := policy.OptionsFrom(config.Default())
	po.Now = clk.Now
	po.RetryBase, po.RetryMax, po.ThrottlePause, po.MaxConcurrency, po.InitialConcurrency = time.Minute, time.Hour, time.Minute, 4, 4
	po.GroupBy, po.Store, po.Logger = "mx", q, slog.New(slog.NewTextHandler(io.Discard, nil))
	pol, err := policy.New(po)
	if err != nil {
		t.Fatal(err)
	}
	so := testOptions(q, pol, out, log)
	so.Clock = clk
	if tweak != nil {
		tweak(&so)
	}
	r := &scriptRig{t: t, clk: clk, q: q, pol: pol, out: out, sched: mustNew(t, so), logs: logs, done: make(chan struct{})}
	loop, stopLoop := context.WithCancel(context.Background())
	sess, stopSess := context.WithCancel(context.Background())
	r.stopLoop, r.stopSess = stopLoop, stopSess
	go func() { r.sched.Run(loop, sess); close(r.done) }()
	t.Cleanup(r.stop)
	return r
}

// stop cuts the sessions and stops the loop, as serve does after the
// grace period, and waits for Run to return.
func (r *scriptRig) stop() {
	r.stopLoop()
	r.stopSess()
	<-r.done
}

func (r *scriptRig) enqueue(from string, rcpts ...string) string {
	r.t.Helper()
	body := fmt.Sprintf("From: <%s>\r\nSubject: t\r\n\r\nhello\r\n", from)
	id, err := r.q.Enqueue(context.Background(), queue.NewMessage{From: from, Rcpts: rcpts, Body: []byte(body)})
	if err != nil {
		r.t.Fatal(err)
	}
	r.sched.Kick()
	return id
}

// idle waits until a session of dest waits for mail with nothing coming
// (the destination ran dry): it is idling for ConnectionIdle.
func (r *scriptRig) idle(dest string) {
	r.t.Helper()
	eventually(r.t, "a session of "+dest+" to go idle", func() bool {
		s := r.sched
		s.mu.Lock()
		defer s.mu.Unlock()
		d := s.dests[dest]
		return d != nil && d.idle > 0 && d.dry && len(d.ready) == 0
	})
}

func (r *scriptRig) get(id string) *queue.Message {
	r.t.Helper()
	m, err := r.q.Get(id)
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}
