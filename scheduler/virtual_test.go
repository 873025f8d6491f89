package scheduler

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"sluice/internal/fakeclock"
	"sluice/policy"
	"sluice/relay/outbound"
	"sluice/reply"
)

// The scheduler's unit tests in virtual time (issue 10 item 6): a fake
// policy behind the Policy interface, an in-memory queue that counts what
// the scheduler reads and writes per domain (memQueue), a fake outbound,
// and a fake clock that moves only when the test says. Nothing sleeps;
// `eventually` polls for what must happen, and `settle` waits until the
// loop has gone quiet after a step before a test checks what must not.

// fakePolicy answers the scheduler's questions from a table: per
// destination a concurrency (default 2) and a pause; every reply is
// "delivered" (250) or "try again in a minute".
type fakePolicy struct {
	clk *fakeclock.Clock

	mu       sync.Mutex
	conc     map[string]int
	active   map[string]int
	peak     map[string]int
	paused   map[string]time.Time
	grouped  map[string]bool
	readies  map[string]int       // Ready calls per destination
	holds    map[string]time.Time // recipient -> held back until (Hold)
	refuse   map[string]time.Time // dest -> Admit refused until, Ready still promising (a fleet's stale view)
	observed int
}

func newFakePolicy(clk *fakeclock.Clock) *fakePolicy {
	return &fakePolicy{clk: clk, conc: map[string]int{}, active: map[string]int{}, peak: map[string]int{},
		paused: map[string]time.Time{}, grouped: map[string]bool{}, readies: map[string]int{}, holds: map[string]time.Time{},
		refuse: map[string]time.Time{}}
}

func (p *fakePolicy) concOf(d string) int {
	if c, ok := p.conc[d]; ok {
		return c
	}
	return 2
}

func (p *fakePolicy) set(d string, conc int, pausedUntil time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conc[d], p.paused[d] = conc, pausedUntil
}

func (p *fakePolicy) Ready(d string) (int, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.readies[d]++
	if until := p.paused[d]; p.clk.Now().Before(until) {
		return 0, until
	}
	if n := p.concOf(d) - p.active[d]; n > 0 {
		return n, time.Time{}
	}
	return 0, time.Time{}
}

func (p *fakePolicy) Admit(d string) (bool, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if until := p.paused[d]; p.clk.Now().Before(until) {
		return false, until
	}
	if until := p.refuse[d]; p.clk.Now().Before(until) {
		return false, until
	}
	if p.active[d] >= p.concOf(d) {
		return false, time.Time{}
	}
	p.active[d]++
	p.peak[d] = max(p.peak[d], p.active[d])
	return true, time.Time{}
}

func (p *fakePolicy) Release(d string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active[d]--
}

func (p *fakePolicy) Reserve(string) time.Duration { return 0 }
func (p *fakePolicy) Continue(d string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.active[d] <= p.concOf(d)
}
func (p *fakePolicy) Paused(d string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.clk.Now().Before(p.paused[d])
}
func (p *fakePolicy) MessagesPerConnection(string) int { return 0 }
func (p *fakePolicy) Hold(_, rcpt string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if until := p.holds[rcpt]; p.clk.Now().Before(until) {
		return until
	}
	return time.Time{}
}

func (p *fakePolicy) Observe(_ string, o policy.Outcome) policy.Decision {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.observed++
	if o.Reply.Code/100 == 2 {
		return policy.Decision{Action: policy.ActionDone}
	}
	return policy.Decision{Action: policy.ActionRetry, RetryAt: p.clk.Now().Add(time.Minute), EndSession: true}
}
func (p *fakePolicy) ObserveExpiry(string) bool { return false }

func (p *fakePolicy) DestinationOf(domain string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return domain, p.grouped[domain]
}

func (p *fakePolicy) Group(domain string, _ []string, _ error) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.grouped[domain] = true
	return domain
}
func (p *fakePolicy) OverrideDomains() []string { return nil }
func (p *fakePolicy) Sweep()                    {}

func (p *fakePolicy) readyCalls(d string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.readies[d]
}

func (p *fakePolicy) peakOf(d string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak[d]
}

// vOutbound is an outbound whose sends succeed at once, unless the
// domain's gate is closed (the send waits for it); MX lookups of a domain
// in mxGate wait likewise. It records the recipients in delivery order
// and the peak of open connections.
type vOutbound struct {
	mu       sync.Mutex
	gates    map[string]chan struct{}
	mxGates  map[string]chan struct{}
	order    []string
	open     int
	peak     int
	inFlight map[string]int
}

func newVOutbound() *vOutbound {
	return &vOutbound{gates: map[string]chan struct{}{}, mxGates: map[string]chan struct{}{}, inFlight: map[string]int{}}
}

func (o *vOutbound) MXHosts(_ context.Context, domain string) ([]string, error) {
	o.mu.Lock()
	g := o.mxGates[domain]
	o.mu.Unlock()
	if g != nil {
		<-g
	}
	return []string{"mx." + domain}, nil
}

func (o *vOutbound) Dial(_ context.Context, domain string) (Session, *reply.Reply) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.open++
	o.peak = max(o.peak, o.open)
	return &vSession{o: o, domain: domain}, nil
}

func (o *vOutbound) delivered() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.order)
}

func (o *vOutbound) count(domain string) int {
	n := 0
	for _, r := range o.delivered() {
		if domainOf(r) == domain {
			n++
		}
	}
	return n
}

func (o *vOutbound) peakOpen() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.peak
}

type vSession struct {
	o      *vOutbound
	domain string
	sent   int
}

func (s *vSession) Relay() string { return "mx." + s.domain + "[192.0.2.1]:25" }
func (s *vSession) Send(ctx context.Context, d *outbound.Delivery) []reply.Reply {
	s.o.mu.Lock()
	g := s.o.gates[s.domain]
	s.o.inFlight[s.domain]++
	s.o.mu.Unlock()
	if g != nil {
		select {
		case <-g:
		case <-ctx.Done():
		}
	}
	s.o.mu.Lock()
	s.o.inFlight[s.domain]--
	s.o.order = append(s.o.order, d.Rcpts...)
	s.o.mu.Unlock()
	s.sent++
	return sameReply(reply.Reply{Stage: reply.StageDataEnd, Code: 250, Enhanced: "2.0.0", Text: "ok"}, len(d.Rcpts))
}
func (s *vSession) Usable() bool                                 { return true }
func (s *vSession) DSN() bool                                    { return false }
func (s *vSession) Sent() int                                    { return s.sent }
func (s *vSession) SameNextHop(_ context.Context, d string) bool { return d == s.domain }
func (s *vSession) Close() error {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	s.o.open--
	return nil
}

// vRig is a scheduler on memQueue, fakePolicy and vOutbound, on one fake
// clock, running until the test ends.
type vRig struct {
	t   *testing.T
	clk *fakeclock.Clock
	q   *memQueue
	pol *fakePolicy
	out *vOutbound
	s   *Scheduler
}

func newVRig(t *testing.T, tweak func(*Options)) *vRig {
	t.Helper()
	clk := fakeclock.New()
	r := &vRig{t: t, clk: clk, q: newMemQueue(t), pol: newFakePolicy(clk), out: newVOutbound()}
	so := testOptions(r.q, r.pol, r.out, quietLog())
	so.Clock = clk
	if tweak != nil {
		tweak(&so)
	}
	r.s = mustNew(t, so)
	return r
}

func (r *vRig) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.s.Run(ctx, context.Background()); close(done) }()
	r.t.Cleanup(func() {
		r.out.mu.Lock()
		for d, g := range r.out.gates {
			close(g)
			delete(r.out.gates, d)
		}
		r.out.mu.Unlock()
		cancel()
		<-done
	})
}

// add queues n one-recipient messages to domain, due at at.
func (r *vRig) add(domain string, n int, at time.Time) {
	for i := range n {
		r.q.add("app@src.test", fmt.Sprintf("u%d-%d@%s", i, at.UnixNano(), domain), at)
	}
}

// settle kicks the loop and waits until it has gone to sleep with no
// lease or lookup in flight: what the last step set off has happened.
func (r *vRig) settle() {
	r.t.Helper()
	before := r.s.turns.Load()
	r.s.Kick()
	eventually(r.t, "the loop to settle", func() bool { return r.s.quiet.Load() > before })
}

// gate closes domain's sends until the returned function opens them.
func (r *vRig) gate(domain string) (open func()) {
	g := make(chan struct{})
	r.out.mu.Lock()
	r.out.gates[domain] = g
	r.out.mu.Unlock()
	return func() {
		r.out.mu.Lock()
		defer r.out.mu.Unlock()
		if r.out.gates[domain] == g {
			close(g)
			delete(r.out.gates, domain)
		}
	}
}

// TestPausedDestinationCostsNothing (issue 10 item 1): a destination
// paused for an hour with a backlog, and mail still arriving for it, is
// neither read nor written, and policy is not asked about it, until the
// pause ends; a healthy destination beside it is served at once. Then its
// backlog goes out in due order. (The old scheduler leased the due
// backlog 1,000 at a time and wrote each job back, due later, at every
// look: the churn the issue measured.)
func TestPausedDestinationCostsNothing(t *testing.T) {
	t.Parallel()
	r := newVRig(t, nil)
	t0 := r.clk.Now()
	r.pol.set("paused.test", 2, t0.Add(time.Hour))
	r.add("paused.test", 1000, t0)
	r.add("ok.test", 20, t0)
	r.run()
	eventually(t, "the healthy destination's mail", func() bool { return r.out.count("ok.test") == 20 })
	readies := r.pol.readyCalls("paused.test")
	for range 59 {
		r.clk.Advance(time.Minute)
		r.add("paused.test", 10, r.clk.Now())
		r.settle()
	}
	if reads, leased, requeued := r.q.cost("paused.test"); reads != 0 || leased != 0 || requeued != 0 {
		t.Errorf("during the pause the scheduler read the paused domain %d times, leased %d and wrote back %d recipients; want none", reads, leased, requeued)
	}
	if n := r.pol.readyCalls("paused.test") - readies; n != 0 {
		t.Errorf("policy was asked about the paused destination %d times during the pause", n)
	}
	r.clk.Advance(time.Minute)
	eventually(t, "the backlog after the pause", func() bool { return r.out.count("paused.test") == 1590 })
	if _, _, requeued := r.q.cost("paused.test"); requeued != 0 {
		t.Errorf("%d recipients written back: the scheduler moved mail", requeued)
	}
	if p := r.pol.peakOf("paused.test"); p > 2 {
		t.Errorf("%d sessions at once, policy allows 2", p)
	}
}

// TestNoStarvationWhenCapacityReturns (issue 10, "starvation"): a
// destination's capacity drops to nothing for 15 s, then comes back. Its
// due recipients all start at once, without the clock moving again, and
// none of them was moved in time by the scheduler (the 85 recipients of
// the issue saw their next retry pushed forward on every look).
func TestNoStarvationWhenCapacityReturns(t *testing.T) {
	t.Parallel()
	r := newVRig(t, nil)
	t0 := r.clk.Now()
	r.pol.set("dest.test", 2, t0.Add(15*time.Second))
	r.add("dest.test", 150, t0)
	r.add("dest.test", 85, t0.Add(5*time.Second)) // arrived during the drop
	r.run()
	for range 14 {
		r.clk.Advance(time.Second)
		r.settle()
	}
	if n := r.out.count("dest.test"); n != 0 {
		t.Fatalf("%d delivered while the destination had no capacity", n)
	}
	r.clk.Advance(time.Second)
	eventually(t, "every due recipient, at once", func() bool { return r.out.count("dest.test") == 235 })
	if _, _, requeued := r.q.cost("dest.test"); requeued != 0 {
		t.Errorf("%d recipients written back by the scheduler", requeued)
	}
}

// A policy shared with other nodes (cluster mode) may refuse an Admit
// its Ready promised (another node took the slot in between) and say
// when to ask again: the loop asks then, not a second later
// (bench/cluster.sh: slots handed between nodes sat idle a second).
func TestRefusedAdmitAsksAgainWhenPolicySays(t *testing.T) {
	t.Parallel()
	r := newVRig(t, nil)
	t0 := r.clk.Now()
	r.pol.mu.Lock()
	r.pol.refuse["dest.test"] = t0.Add(250 * time.Millisecond)
	r.pol.mu.Unlock()
	r.add("dest.test", 5, t0)
	r.run()
	r.settle()
	if n := r.out.count("dest.test"); n != 0 {
		t.Fatalf("%d delivered while Admit refused", n)
	}
	r.clk.Advance(300 * time.Millisecond)
	r.settle()
	eventually(t, "delivery after the policy's retry time", func() bool { return r.out.count("dest.test") == 5 })
}

// TestHeadOfLineSlowDestination (issue 10, "head of line"): a slow
// destination whose two sessions hang holds only what those sessions
// can start (one job each and one ahead); a healthy destination's mail
// goes out meanwhile.
func TestHeadOfLineSlowDestination(t *testing.T) {
	t.Parallel()
	r := newVRig(t, nil)
	t0 := r.clk.Now()
	open := r.gate("slow.test")
	r.add("slow.test", 500, t0)
	r.run()
	eventually(t, "the slow destination's sessions to hang", func() bool {
		r.out.mu.Lock()
		defer r.out.mu.Unlock()
		return r.out.inFlight["slow.test"] == 2
	})
	r.add("ok.test", 100, r.clk.Now())
	eventually(t, "the healthy destination's mail beside the slow one", func() bool { return r.out.count("ok.test") == 100 })
	r.settle()
	if _, leased, _ := r.q.cost("slow.test"); leased > 4 {
		t.Errorf("the slow destination leased %d recipients with 2 sessions hanging; want at most 4", leased)
	}
	open()
	eventually(t, "the slow destination's mail", func() bool { return r.out.count("slow.test") == 500 })
}

// TestMaxSessionsCapsAllDestinations (issue 10, delivery.max_sessions):
// 40 destinations that policy would each give 3 sessions share 5; every
// message goes out, and sessions idling for connection_idle give their
// slot up to a destination that waits for one (nothing moves the clock).
func TestMaxSessionsCapsAllDestinations(t *testing.T) {
	t.Parallel()
	r := newVRig(t, func(o *Options) { o.MaxSessions, o.ConnectionIdle = 5, time.Hour })
	t0 := r.clk.Now()
	for i := range 40 {
		d := fmt.Sprintf("d%02d.test", i)
		r.pol.set(d, 3, time.Time{})
		r.add(d, 4, t0)
	}
	r.run()
	eventually(t, "every message", func() bool { return len(r.out.delivered()) == 160 })
	if p := r.out.peakOpen(); p > 5 {
		t.Errorf("%d connections at once, max_sessions is 5", p)
	}
}

// TestResumeInDueOrderAtPolicyRate (issue 10, "resuming"): after a pause
// the backlog goes out in due order, never more sessions at once than
// policy allows (one here: no storm).
func TestResumeInDueOrderAtPolicyRate(t *testing.T) {
	t.Parallel()
	r := newVRig(t, nil)
	t0 := r.clk.Now()
	r.pol.set("dest.test", 1, t0.Add(time.Hour))
	var want []string
	for _, off := range []int{30, 5, 50, 10, 40, 20, 0, 45, 15, 25} {
		at := t0.Add(time.Duration(off) * time.Minute)
		id := r.q.add("app@src.test", fmt.Sprintf("due%02d@dest.test", off), at)
		_ = id
	}
	for _, off := range []int{0, 5, 10, 15, 20, 25, 30, 40, 45, 50} {
		want = append(want, fmt.Sprintf("due%02d@dest.test", off))
	}
	r.run()
	r.clk.Advance(time.Hour)
	eventually(t, "the backlog", func() bool { return r.out.count("dest.test") == 10 })
	if got := r.out.delivered(); !slices.Equal(got, want) {
		t.Errorf("delivered in the order %v, want due order %v", got, want)
	}
	if p := r.pol.peakOf("dest.test"); p != 1 {
		t.Errorf("%d sessions at once after the pause, policy allows 1", p)
	}
}

// TestDomainWaitingForDNSBlocksNoOther (issue 10 items 1, 2): a domain
// whose MX lookup hangs holds up no other domain; its mail goes once the
// answer comes.
func TestDomainWaitingForDNSBlocksNoOther(t *testing.T) {
	t.Parallel()
	r := newVRig(t, nil)
	g := make(chan struct{})
	r.out.mxGates["slowdns.test"] = g
	t0 := r.clk.Now()
	r.add("slowdns.test", 5, t0)
	r.add("ok.test", 5, t0)
	r.run()
	eventually(t, "the other domain's mail", func() bool { return r.out.count("ok.test") == 5 })
	if n := r.out.count("slowdns.test"); n != 0 {
		t.Fatalf("%d delivered before the MX answer", n)
	}
	close(g)
	eventually(t, "the mail after the answer", func() bool { return r.out.count("slowdns.test") == 5 })
}

// TestFailedLeaseCommitLeavesNoOrphan: a lease whose commit reports a
// failure but reached the file (a failed fsync) leaves no recipient
// leased until its deadline: the scheduler hands back every lease it does
// not hold, and the mail goes out at the retry a second later (the
// lease deadline is an hour and more away).
func TestFailedLeaseCommitLeavesNoOrphan(t *testing.T) {
	t.Parallel()
	r := newVRig(t, nil)
	r.q.failLeases = 1
	r.add("dest.test", 6, r.clk.Now())
	r.run()
	r.settle()
	r.clk.Advance(time.Second)
	eventually(t, "every message", func() bool { return r.out.count("dest.test") == 6 })
}

// TestInspectShowsTheLoopsView: Inspect reports what the loop holds of
// each destination, from the loop itself: a paused destination's due
// head and the time policy named; a served one's sessions. The simulator
// (internal/sim) measures starvation with it.
func TestInspectShowsTheLoopsView(t *testing.T) {
	t.Parallel()
	r := newVRig(t, func(o *Options) { o.ConnectionIdle = time.Hour })
	t0 := r.clk.Now()
	r.pol.set("paused.test", 2, t0.Add(time.Hour))
	r.add("paused.test", 10, t0)
	r.add("ok.test", 3, t0)
	r.run()
	eventually(t, "the open destination's mail", func() bool { return r.out.count("ok.test") == 3 })
	r.settle()
	views := map[string]DestView{}
	for _, v := range r.s.Inspect(context.Background()) {
		views[v.Name] = v
	}
	if v := views["paused.test"]; !v.Head.Equal(t0) || !v.AskAt.Equal(t0.Add(time.Hour)) || v.Sessions != 0 || v.Ready != 0 {
		t.Errorf("paused destination: %+v", v)
	}
	if v := views["ok.test"]; !v.Head.IsZero() || v.Sessions == 0 || v.Idle != v.Sessions {
		t.Errorf("served destination with idling sessions: %+v", v)
	}
}

// TestReconsiderAfterAnOperatorResume: an operator ends a pause early
// (`queue flush --force` resumes the destination in policy); Reconsider
// has the loop ask policy again at once instead of at the old pause end.
func TestReconsiderAfterAnOperatorResume(t *testing.T) {
	t.Parallel()
	r := newVRig(t, nil)
	t0 := r.clk.Now()
	r.pol.set("dest.test", 2, t0.Add(time.Hour))
	r.add("dest.test", 20, t0)
	r.run()
	r.settle()
	r.pol.set("dest.test", 2, time.Time{}) // policy.Resume
	r.s.Kick()
	r.settle()
	if n := r.out.count("dest.test"); n != 0 {
		t.Fatalf("%d delivered on a plain Kick: the loop keeps its parking time", n)
	}
	r.s.Reconsider()
	eventually(t, "the mail after the resume", func() bool { return r.out.count("dest.test") == 20 })
}
