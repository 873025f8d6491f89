package scheduler

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"sluice/config"
	"sluice/internal/dnstest"
	"sluice/internal/fakemx"
	"sluice/policy"
	"sluice/queue"
	"sluice/relay/outbound"
	"sluice/reply"
	"sluice/resolver"
)

// eventually polls a condition (not a sleep standing in for an event).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (r *scriptRig) state(id string) queue.Recipient {
	r.t.Helper()
	return r.get(id).Recipients[0]
}

func (fs *scriptSession) isClosed() bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.closed
}

// delivery.connection_idle (issue 9 item 24): after its last job a
// session keeps its connection for mail that comes later, then QUITs when
// the idle time is up; the next mail dials again. Virtual time: the test
// moves the clock past the idle time.
func TestConnectionIdleKeepsTheConnectionForLaterMail(t *testing.T) {
	t.Parallel()
	out := &scriptOutbound{}
	r := newScriptRig(t, out, func(o *Options) { o.ConnectionIdle = time.Hour })

	m1 := r.enqueue("app@src.test", "a@dest.test")
	eventually(t, "the first delivery", func() bool { return r.state(m1).State == queue.StateSent })
	r.idle("dest.test")
	m2 := r.enqueue("app@src.test", "b@dest.test")
	eventually(t, "the second delivery", func() bool { return r.state(m2).State == queue.StateSent })
	r.idle("dest.test") // m2 went out and the session is idle again
	if st := r.state(m2).State; st != queue.StateSent {
		t.Fatalf("second message %s", st)
	}
	out.mu.Lock()
	dials, sess := len(out.dials), out.sessions[0]
	out.mu.Unlock()
	if dials != 1 || sess.Sent() != 2 || sess.isClosed() {
		t.Fatalf("dials %d, sent on the first connection %d, closed %v: want one connection carrying both", dials, sess.Sent(), sess.isClosed())
	}

	r.clk.Advance(time.Hour)
	eventually(t, "the idle session to QUIT", sess.isClosed)
	eventually(t, "the slot to be released", func() bool {
		st, ok := r.pol.State("dest.test")
		return !ok || st.Active == 0
	})
	m3 := r.enqueue("app@src.test", "c@dest.test")
	eventually(t, "the third delivery", func() bool { return r.state(m3).State == queue.StateSent })
	if st := r.state(m3).State; st != queue.StateSent || out.dialCount() != 2 {
		t.Fatalf("after the idle time: message %s, dials %d; want sent on a new connection", st, out.dialCount())
	}
}

// With connection_idle = 0 a session QUITs as soon as it has no mail.
func TestConnectionIdleZeroClosesAtOnce(t *testing.T) {
	t.Parallel()
	out := &scriptOutbound{}
	r := newScriptRig(t, out, func(o *Options) { o.ConnectionIdle = 0 })
	m := r.enqueue("app@src.test", "a@dest.test")
	eventually(t, "delivery", func() bool { return r.state(m).State == queue.StateSent })
	eventually(t, "the session to close", func() bool {
		out.mu.Lock()
		defer out.mu.Unlock()
		return len(out.sessions) == 1 && out.sessions[0].isClosed()
	})
}

// An idle session whose connection the server dropped does not dial a
// new one while the destination is paused: the job goes back, the slot
// is given up, and policy decides when to dial (issue 9 item 24: "not
// dial during a pause"). The job goes back due when it was due: the
// scheduler does not move deferred mail (issue 10).
func TestIdleSessionDoesNotDialDuringAPause(t *testing.T) {
	t.Parallel()
	out := &scriptOutbound{}
	r := newScriptRig(t, out, func(o *Options) { o.ConnectionIdle = time.Hour })
	r.enqueue("app@src.test", "a@dest.test")
	r.idle("dest.test")
	out.mu.Lock()
	sess := out.sessions[0]
	out.mu.Unlock()
	sess.mu.Lock()
	sess.usable = false // the server dropped the idle connection
	sess.mu.Unlock()
	r.pol.Observe("dest.test", policy.Outcome{Reply: reply.Reply{Stage: reply.StageMail, Code: 421, Enhanced: "4.7.0", Text: "Too many connections, slow down"}, Attempts: 1})
	st, _ := r.pol.State("dest.test")
	if st.State != policy.StatePaused {
		t.Fatalf("destination not paused: %+v", st)
	}
	m2 := r.enqueue("app@src.test", "b@dest.test")
	due := r.state(m2).NextAttempt
	eventually(t, "the job to go back to the queue, due as it was", func() bool {
		rc := r.state(m2)
		r.sched.mu.Lock()
		defer r.sched.mu.Unlock()
		d := r.sched.dests["dest.test"]
		return rc.State == queue.StateQueued && rc.NextAttempt.Equal(due) && d != nil && d.sessions == 0
	})
	if n := out.dialCount(); n != 1 {
		t.Errorf("%d dials: a new connection was opened during the pause", n)
	}
	if rc := r.state(m2); rc.Attempts != 0 {
		t.Errorf("the message was attempted: %+v", rc)
	}
}

// Stopping the scheduler wakes idle sessions at once: they QUIT instead of
// holding the shutdown for connection_idle.
func TestShutdownWakesIdleSessions(t *testing.T) {
	t.Parallel()
	out := &scriptOutbound{}
	r := newScriptRig(t, out, func(o *Options) { o.ConnectionIdle = time.Hour })
	r.enqueue("app@src.test", "a@dest.test")
	r.idle("dest.test")
	r.stopLoop() // the loop only: sessions are not cut, they must leave by themselves
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown waits for an idle session")
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	if !out.sessions[0].isClosed() {
		t.Error("idle session not closed at shutdown")
	}
}

// hopResolver is a resolver over an in-process zone: domains to MX hosts
// that all live on loopback.
func hopResolver(t *testing.T, records ...string) *resolver.Resolver {
	t.Helper()
	r, err := resolver.New(resolver.Options{Transport: dnstest.NewInProcess(dnstest.NewZone(records...), false),
		Workers: 4, MinTTL: time.Second, MaxTTL: time.Hour, MaxEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// Issue 9 item 26: a provider destination whose domains share their MX
// hosts carries them on one connection; a domain of the same provider
// behind other MX hosts gets its own. Real queue, policy and outbound
// client against the fake MX; concurrency 1, so one session does it all.
func TestProviderDomainsShareTheConnection(t *testing.T) {
	t.Parallel()
	mx, err := fakemx.Start(fakemx.Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mx.Close() })
	_, portStr, _ := net.SplitHostPort(mx.Addr())
	port, _ := strconv.Atoi(portStr)
	res := hopResolver(t,
		"a.test. 300 IN MX 10 mx1.shared.test.", "a.test. 300 IN MX 20 mx2.shared.test.",
		"b.test. 300 IN MX 10 mx1.shared.test.", "b.test. 300 IN MX 20 mx2.shared.test.",
		"c.test. 300 IN MX 10 mx9.shared.test.",
		"mx1.shared.test. 300 IN A 127.0.0.1", "mx2.shared.test. 300 IN A 127.0.0.1", "mx9.shared.test. 300 IN A 127.0.0.1")
	oo := outbound.OptionsFrom(config.Default())
	oo.Hostname, oo.TLS, oo.Port, oo.Resolver, oo.LocalAddrs, oo.Logger = "sluice.test", outbound.TLSNone, port, res, nil, slog.New(slog.DiscardHandler)
	out, err := outbound.New(oo)
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(queueOptions(filepath.Join(t.TempDir(), "queue.db"), slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	po := policy.OptionsFrom(config.Default())
	po.RetryBase, po.RetryMax, po.MaxConcurrency, po.InitialConcurrency, po.GroupBy = time.Minute, time.Hour, 1, 1, "mx"
	po.Providers = []policy.Provider{{Name: "shared", Suffixes: []string{"shared.test"}}}
	po.Store, po.Logger = q, slog.New(slog.NewTextHandler(io.Discard, nil))
	pol, err := policy.New(po)
	if err != nil {
		t.Fatal(err)
	}
	s := mustNew(t, testOptions(q, pol, RelayOutbound(out), slog.New(slog.DiscardHandler)))
	// The groupings are known before the mail (they are looked up off
	// the loop otherwise, in whatever order the answers come): the
	// destination's domains then go in due order, a then b then a then
	// c, and the single session takes them in a row.
	for _, d := range []string{"a.test", "b.test", "c.test"} {
		mx, err := out.MXHosts(context.Background(), d)
		pol.Group(d, mx, err)
	}
	for _, rcpts := range [][]string{{"u@a.test", "u@b.test"}, {"v@a.test", "v@c.test"}} {
		// One message per list, one after the other.
		body := fmt.Sprintf("From: <app@src.test>\r\nSubject: %s\r\n\r\nhello\r\n", rcpts[1])
		if _, err := q.Enqueue(context.Background(), queue.NewMessage{From: "app@src.test", Rcpts: rcpts, Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, context.Background()); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, "four deliveries", func() bool { return mx.Stats().Delivered == 4 })
	// a, b (one connection), then a again and c: a.test reuses, c.test
	// (another MX host set) dials. Three connections would mean a redial
	// on every change of domain, as before.
	if st := mx.Stats(); st.Sessions != 2 {
		t.Errorf("%d connections for a,b,a,c: want 2 (a and b share one; c has other MX hosts)", st.Sessions)
	}
}

// yieldingPolicy is the policy of a node in a fleet (cluster mode) where
// another node waits for a slot once wanted is set.
type yieldingPolicy struct {
	*policy.Policy
	wanted atomic.Bool
}

func (p *yieldingPolicy) Yield(string) bool { return p.wanted.Load() }

// In cluster mode an idle session holds one of the fleet's slots: when
// another node waits for one (Yielder), the session QUITs at its next
// check instead of idling out connection_idle (issue 15).
func TestIdleSessionYieldsToTheFleet(t *testing.T) {
	t.Parallel()
	out := &scriptOutbound{}
	var yp *yieldingPolicy
	r := newScriptRig(t, out, func(o *Options) {
		o.ConnectionIdle = time.Hour
		yp = &yieldingPolicy{Policy: o.Policy.(*policy.Policy)}
		o.Policy = yp
	})
	m1 := r.enqueue("app@src.test", "a@dest.test")
	eventually(t, "the delivery", func() bool { return r.state(m1).State == queue.StateSent })
	r.idle("dest.test")
	out.mu.Lock()
	sess := out.sessions[0]
	out.mu.Unlock()
	r.clk.Advance(yieldCheck)
	r.idle("dest.test") // nobody waits: it idles on
	if sess.isClosed() {
		t.Fatal("the idle session ended with no other node waiting")
	}
	yp.wanted.Store(true)
	for i := 0; i < 100 && !sess.isClosed(); i++ {
		r.clk.Advance(yieldCheck)
		time.Sleep(time.Millisecond)
	}
	eventually(t, "the idle session to QUIT for the other node", sess.isClosed)
}
