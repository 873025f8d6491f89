// Package scheduler moves mail from the queue to the wire. It is a single
// loop that wakes on the earliest due time or on a kick after an enqueue,
// leases due recipients from the queue index in time order, groups them by
// message and recipient domain (one transaction carries every recipient of
// a message at one domain), and hands them to per-destination sessions
// that policy admits. Every reply goes to policy.Observe, and its decision
// goes back to the queue in a group commit.
//
// Promises: a recipient is leased (marked in flight) before it is dialled,
// so a crash means a retry, never a loss; an outcome is retried until it
// commits (or shutdown), and the leases the scheduler holds are never
// reclaimed under it, so one process never delivers a recipient twice;
// leases nobody holds any more expire and are retried while running;
// every attempt is logged on one mail-log line; nothing is dialled while
// policy says the destination is paused.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"sluice/config"
	"sluice/policy"
	"sluice/queue"
	"sluice/relay/outbound"
	"sluice/reply"
)

// Queue is what the scheduler needs from the durable queue.
type Queue interface {
	Lease(now time.Time, max int) ([]queue.Item, error)
	// Reclaim returns expired leases that held does not claim to the due
	// index and extends the others (see queue.Queue.Reclaim).
	Reclaim(now time.Time, held func(id string, rcpt int) bool) (int, time.Time, error)
	NextDue() (time.Time, bool, error)
	OpenBody(id string) (*queue.Body, error)
	Update(ctx context.Context, ups []queue.Update) error
	Enqueue(ctx context.Context, m queue.NewMessage) (string, error)
	Suppress(addr, reason string) error
}

// Session is one outbound SMTP connection.
type Session interface {
	Relay() string
	Send(ctx context.Context, d *outbound.Delivery) []reply.Reply
	Usable() bool
	Sent() int
	Close() error
	// SameNextHop reports whether mail for domain goes to the same next
	// hop as the session's (same MX host set, route or smarthost, same
	// TLS mode): then the session may carry it (issue 9 item 26).
	SameNextHop(ctx context.Context, domain string) bool
}

// Outbound opens sessions to the next hop of a recipient domain.
type Outbound interface {
	MXHosts(ctx context.Context, domain string) ([]string, error)
	Dial(ctx context.Context, domain string) (Session, *reply.Reply)
}

// Options configures the scheduler. They are complete: New fills nothing
// in (OptionsFrom maps the config and the package's fixed knobs) and
// refuses what makes no sense.
type Options struct {
	Queue    Queue
	Policy   *policy.Policy
	Outbound Outbound

	Hostname         string        // Reporting-MTA of DSNs
	MaxQueueLifetime time.Duration // a recipient still failing after this long expires with a DSN
	MaxPerConnection int           // messages per outbound connection before a fresh one; 0 = unlimited
	SuppressUnknown  bool          // a 5.1.1 bounce puts the address on the suppression list
	LeaseBatch       int           // recipients leased per queue transaction
	MaxInMemory      int           // leased recipients waiting in memory before leasing pauses
	MaxPerDest       int           // jobs one destination may hold in memory; the excess goes back to the queue
	HoldThreshold    time.Duration // a destination paused longer than this gives its waiting mail back to the queue; 0 = any pause does
	MaxInlineWait    time.Duration // a session waits for a rate token this long at most before handing its mail back; 0 = never waits
	ResolveTimeout   time.Duration // MX lookup for destination grouping
	// ConnectionIdle: after its last job a session keeps its connection
	// this long for more mail to the same next hop, then QUITs (config
	// delivery.connection_idle; 0 = QUIT at once).
	ConnectionIdle time.Duration
	// IdleTimer starts the connection_idle timer: its channel fires once,
	// stop releases it. nil = the real clock; tests fire it by hand.
	IdleTimer func(d time.Duration) (c <-chan time.Time, stop func() bool)

	// OnAttempt, when set, is told about every delivery attempt (metrics).
	OnAttempt func(a Attempt)

	Now    func() time.Time // nil = time.Now
	Logger *slog.Logger     // mail log: one line per delivery attempt; nil = slog.Default()
}

// The scheduler's fixed knobs: not config keys, since they bound memory
// and latency inside the process rather than anything a site tunes. They
// are what OptionsFrom sets; tests may set others.
const (
	DefaultLeaseBatch     = 1000             // recipients per lease transaction
	DefaultMaxInMemory    = 20000            // leased recipients held in memory
	DefaultMaxPerDest     = 2000             // jobs per destination in memory (design notes: memory is bounded per destination)
	DefaultHoldThreshold  = 2 * time.Second  // pauses up to this are waited out in memory
	DefaultMaxInlineWait  = time.Second      // a rate token up to this far is waited for on the open connection
	DefaultResolveTimeout = 10 * time.Second // one MX lookup for grouping
)

// OptionsFrom maps the config onto Options, with the fixed knobs; the
// caller adds Queue, Policy, Outbound, OnAttempt and Logger.
func OptionsFrom(cfg *config.Config) Options {
	return Options{
		Hostname:         cfg.Hostname,
		MaxQueueLifetime: time.Duration(cfg.Delivery.MaxQueueLifetime),
		MaxPerConnection: cfg.Delivery.MaxMessagesPerConnection,
		ConnectionIdle:   time.Duration(cfg.Delivery.ConnectionIdle),
		SuppressUnknown:  cfg.Policy.SuppressOnUnknownUser,
		LeaseBatch:       DefaultLeaseBatch,
		MaxInMemory:      DefaultMaxInMemory,
		MaxPerDest:       DefaultMaxPerDest,
		HoldThreshold:    DefaultHoldThreshold,
		MaxInlineWait:    DefaultMaxInlineWait,
		ResolveTimeout:   DefaultResolveTimeout,
	}
}

// check refuses options that make no sense; it changes nothing.
func (o *Options) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("scheduler: "+format, args...)) }
	if o.Queue == nil || o.Policy == nil || o.Outbound == nil {
		bad("Queue, Policy and Outbound are required")
	}
	if o.Hostname == "" {
		bad("Hostname is required (Reporting-MTA of DSNs)")
	}
	if o.MaxQueueLifetime <= 0 || o.ResolveTimeout <= 0 {
		bad("MaxQueueLifetime and ResolveTimeout must be positive")
	}
	if o.MaxPerConnection < 0 || o.HoldThreshold < 0 || o.MaxInlineWait < 0 || o.ConnectionIdle < 0 {
		bad("MaxPerConnection, HoldThreshold, MaxInlineWait and ConnectionIdle must not be negative")
	}
	if o.LeaseBatch < 1 || o.MaxInMemory < 1 || o.MaxPerDest < 1 {
		bad("LeaseBatch, MaxInMemory and MaxPerDest must be at least 1")
	}
	return errors.Join(errs...)
}

// Attempt describes one recipient's delivery attempt, for metrics.
type Attempt struct {
	Dest, Domain string
	Class        policy.Class
	Status       string        // sent | deferred | bounced | expired
	Reply        reply.Reply   // what the receiver said
	Delay        time.Duration // since the message was queued
	Fix          string        // auth-fix only: what to fix on our side (SPF, DKIM, alignment, PTR, TLS...)
}

// Scheduler is the delivery loop. Create it with New and run it with Run.
type Scheduler struct {
	o    Options
	now  func() time.Time
	log  *slog.Logger
	kick chan struct{}

	// leases is every lease this scheduler holds, for the queue's reaper.
	leases heldLeases
	// stopped is closed when shutdown begins: outcome retries stop.
	stopped chan struct{}
	// after is time.After; tests make it immediate.
	after func(time.Duration) <-chan time.Time
	// nextReclaim is when the loop next asks the queue to reclaim
	// expired leases (only the Run goroutine uses it).
	nextReclaim time.Time

	mu       sync.Mutex
	dests    map[string]*dest
	inMemory int            // leased recipients held in dest queues
	wg       sync.WaitGroup // sessions
	stopping bool
}

// dest is the scheduler's view of one destination: mail waiting for a
// session, and how many sessions run. It exists only while it has either
// (see dropIfIdleLocked): what is worth keeping about a destination
// between visits is policy's.
type dest struct {
	name     string
	pending  []*job
	sessions int
	timer    *time.Timer // wakes the pump when a pause ends or a token is due
	// notBefore: a session gave its job back to wait for a rate token;
	// no new session starts before then (the timer pumps at that time).
	notBefore time.Time
	// arrived, when not nil, is closed (and cleared) when mail is added
	// to pending or the scheduler stops: it wakes the idle sessions.
	arrived chan struct{}
}

// wakeIdleLocked wakes every session idling at d. Caller holds s.mu.
func (d *dest) wakeIdleLocked() {
	if d.arrived != nil {
		close(d.arrived)
		d.arrived = nil
	}
}

// job is one message's recipients at one domain: one SMTP transaction.
type job struct {
	id, from, domain string
	received         time.Time
	smtputf8         bool // the message asked for SMTPUTF8 at MAIL
	items            []queue.Item
}

// New checks the options and returns a scheduler; Run starts it.
func New(o Options) (*Scheduler, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	s := &Scheduler{
		o:       o,
		now:     o.Now,
		log:     o.Logger,
		kick:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
		after:   time.After,
		dests:   map[string]*dest{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, nil
}

// Kick wakes the loop, for example after an enqueue. It never blocks.
func (s *Scheduler) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run delivers until ctx is cancelled, then waits for sessions in flight
// to finish (they are bounded by the outbound deadlines; cancel the
// sessions' context through grace) and returns mail still waiting in
// memory to the queue as due, so that nothing stays leased.
func (s *Scheduler) Run(ctx context.Context, sessionCtx context.Context) error {
	s.groupOverrides(ctx)
	for {
		// Idle destinations and groupings leave memory (policy keeps
		// what matters in its store); the loop wakes at least once a
		// minute, and the sweep costs what it drops.
		s.o.Policy.Sweep()
		s.reclaim()
		n, err := s.leaseDue(ctx, sessionCtx)
		if err != nil && ctx.Err() == nil {
			s.log.Error("queue lease failed", "err", err)
		}
		if n == s.o.LeaseBatch {
			continue // more is due right now
		}
		wait := time.Minute
		if t, ok, err := s.o.Queue.NextDue(); err == nil && ok {
			wait = t.Sub(s.now())
		}
		if r := s.nextReclaim.Sub(s.now()); r < wait {
			wait = r
		}
		if wait < time.Millisecond {
			wait = time.Millisecond
		}
		if n > 0 && wait < 5*time.Millisecond {
			wait = 5 * time.Millisecond
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			s.shutdown()
			return nil
		case <-s.kick:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// reclaimPoll is how often the loop looks for expired leases when none
// has a deadline yet: one O(log n) read.
const reclaimPoll = time.Minute

// reclaim has the queue return expired leases that this scheduler no
// longer holds (an outcome lost to a failed commit before it was retried,
// a requeue that failed) to the due index, when the earliest deadline has
// come. The recipients are due now, so the lease that follows picks them
// up at once.
func (s *Scheduler) reclaim() {
	now := s.now()
	if now.Before(s.nextReclaim) {
		return
	}
	n, next, err := s.o.Queue.Reclaim(now, s.leases.held)
	switch {
	case err != nil:
		s.log.Error("reclaiming expired leases failed", "err", err)
		s.nextReclaim = now.Add(reclaimPoll)
	case next.IsZero():
		s.nextReclaim = now.Add(reclaimPoll)
	default:
		s.nextReclaim = next
	}
	if n > 0 {
		s.log.Warn("expired leases returned to the queue", "recipients", n)
	}
}

// shutdown waits for sessions and gives every waiting job back to the queue.
func (s *Scheduler) shutdown() {
	s.mu.Lock()
	s.stopping = true
	for _, d := range s.dests {
		d.wakeIdleLocked() // idle sessions see stopping and QUIT
	}
	s.mu.Unlock()
	close(s.stopped)
	s.wg.Wait()
	s.mu.Lock()
	var ups []queue.Update
	now := s.now()
	for _, d := range s.dests {
		if d.timer != nil {
			d.timer.Stop()
		}
		for _, j := range d.pending {
			ups = append(ups, returnLease(j, now)...)
		}
		d.pending = nil
	}
	s.inMemory = 0
	s.mu.Unlock()
	if len(ups) > 0 {
		if err := s.o.Queue.Update(context.Background(), ups); err != nil {
			s.log.Error("returning leases at shutdown failed; they return to due at the next start", "err", err)
		}
	}
	for _, it := range ups {
		s.leases.drop([]queue.Item{{ID: it.ID, Rcpt: it.Rcpt}})
	}
}

func returnLease(j *job, at time.Time) []queue.Update {
	ups := make([]queue.Update, 0, len(j.items))
	for _, it := range j.items {
		ups = append(ups, queue.Update{ID: it.ID, Rcpt: it.Rcpt, State: queue.StateQueued, NextAttempt: at})
	}
	return ups
}

// leaseDue takes due recipients and queues them at their destinations.
func (s *Scheduler) leaseDue(ctx, sessionCtx context.Context) (int, error) {
	s.mu.Lock()
	room := s.o.MaxInMemory - s.inMemory
	s.mu.Unlock()
	if room <= 0 {
		return 0, nil
	}
	max := min(room, s.o.LeaseBatch)
	items, err := s.o.Queue.Lease(s.now(), max)
	if err != nil || len(items) == 0 {
		return 0, err
	}
	s.leases.add(items)
	// Group recipients of one message at one domain into one job, keeping
	// the lease order (due time) between jobs.
	type key struct{ id, domain string }
	jobs := map[key]*job{}
	var order []*job
	for _, it := range items {
		k := key{it.ID, it.Domain}
		j := jobs[k]
		if j == nil {
			j = &job{id: it.ID, from: it.From, domain: it.Domain, received: it.Received, smtputf8: it.SMTPUTF8}
			jobs[k] = j
			order = append(order, j)
		}
		j.items = append(j.items, it)
	}
	touched := map[string]bool{}
	var backlog []*job
	var backlogAt []time.Time
	for _, j := range order {
		name := s.destination(ctx, j.domain)
		s.mu.Lock()
		d := s.dests[name]
		if d == nil {
			d = &dest{name: name}
			s.dests[name] = d
		}
		if len(d.pending) >= s.o.MaxPerDest {
			// A slow destination must not fill memory and starve the
			// others of leases: its excess goes back to the queue, due
			// when the destination's current rate would reach it.
			backlog = append(backlog, j)
			backlogAt = append(backlogAt, s.now().Add(s.drainTime(name, len(d.pending))))
			s.mu.Unlock()
			continue
		}
		d.pending = append(d.pending, j)
		s.inMemory += len(j.items)
		d.wakeIdleLocked()
		s.mu.Unlock()
		touched[name] = true
	}
	for i, j := range backlog {
		s.requeue([]*job{j}, backlogAt[i])
	}
	for name := range touched {
		s.pump(sessionCtx, name)
	}
	return len(items), nil
}

// drainTime estimates how long the destination needs for n waiting jobs
// at its current rate (a second when it has no rate cap).
func (s *Scheduler) drainTime(name string, n int) time.Duration {
	if st, ok := s.o.Policy.State(name); ok && st.Rate > 0 {
		return time.Duration(float64(n) / float64(st.Rate) * float64(time.Second))
	}
	return time.Second
}

// destination maps a recipient domain to its policy destination. Policy
// owns the map; the scheduler looks the MX hosts up when policy has no
// fresh grouping.
func (s *Scheduler) destination(ctx context.Context, domain string) string {
	if name, ok := s.o.Policy.DestinationOf(domain); ok {
		return name
	}
	rctx, cancel := context.WithTimeout(ctx, s.o.ResolveTimeout)
	mx, err := s.o.Outbound.MXHosts(rctx, domain)
	cancel()
	return s.o.Policy.Group(domain, mx, err)
}

// groupOverrides looks up, in parallel, the domains that have a
// [[policy.destination]] override, before the first lease: an override
// on a domain hosted at a provider then limits the provider's whole
// destination from the first message to any of its domains, not from the
// first message to that domain (issue 9 item 22). A lookup that fails
// leaves the grouping stored with the destination's state, if any, and
// the domain is looked up again when mail for it comes.
func (s *Scheduler) groupOverrides(ctx context.Context) {
	var wg sync.WaitGroup
	for _, d := range s.o.Policy.OverrideDomains() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.destination(ctx, d)
		}()
	}
	wg.Wait()
}

// pump starts sessions at a destination while policy admits them and
// there is mail for them, and handles a pause: a short one is waited out
// in memory, a long one hands the mail back to the queue.
func (s *Scheduler) pump(ctx context.Context, name string) {
	for {
		s.mu.Lock()
		d := s.dests[name]
		if d == nil || s.stopping || len(d.pending) <= d.sessions || s.now().Before(d.notBefore) {
			if d != nil && !s.stopping {
				s.dropIfIdleLocked(d)
			}
			s.mu.Unlock()
			return
		}
		ok, retryAt := s.o.Policy.Admit(name)
		if ok {
			d.sessions++
			s.wg.Add(1)
			s.mu.Unlock()
			go s.session(ctx, name)
			continue
		}
		if retryAt.IsZero() { // all slots busy: a Release pumps again
			s.mu.Unlock()
			return
		}
		wait := retryAt.Sub(s.now())
		if wait > s.o.HoldThreshold && d.sessions == 0 {
			// Paused for a while: give the mail back to the queue, due
			// when the pause ends plus jitter, so that memory holds only
			// work that can go soon and a restart does not forget it.
			jobs := d.pending
			d.pending = nil
			for _, j := range jobs {
				s.inMemory -= len(j.items)
			}
			s.dropIfIdleLocked(d)
			s.mu.Unlock()
			s.requeue(jobs, retryAt)
			return
		}
		s.wakeLocked(ctx, d, wait)
		s.mu.Unlock()
		return
	}
}

// wakeLocked arms the destination's timer to pump again after wait.
func (s *Scheduler) wakeLocked(ctx context.Context, d *dest, wait time.Duration) {
	if wait < time.Millisecond {
		wait = time.Millisecond
	}
	if d.timer != nil {
		d.timer.Stop()
	}
	name := d.name
	d.timer = time.AfterFunc(wait, func() { s.pump(ctx, name) })
}

// requeue returns jobs to the queue, due at `at` plus up to 10% jitter, so
// that a reopening destination is not hit by all its mail at the same instant.
func (s *Scheduler) requeue(jobs []*job, at time.Time) {
	var ups []queue.Update
	now := s.now()
	spread := at.Sub(now) / 10
	for _, j := range jobs {
		t := at
		if spread > 0 {
			t = at.Add(time.Duration(rand.Int64N(int64(spread) + 1)))
		}
		ups = append(ups, returnLease(j, t)...)
	}
	if err := s.o.Queue.Update(context.Background(), ups); err != nil {
		s.log.Error("requeue failed; the leases return to due when they expire", "err", err)
	}
	// Whether the write worked or not, nobody here holds these leases
	// any more: after a failure the reaper returns them at their deadline.
	for _, j := range jobs {
		s.leases.drop(j.items)
	}
	s.Kick()
}

// next takes the destination's next job for a session, or nil when the
// session should end: no mail, a pause, or more sessions than policy now
// allows (after a multiplicative decrease, extra sessions drain away).
func (s *Scheduler) next(name string) *job {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, _ := s.nextLocked(name)
	return j
}

// nextLocked is next; idle reports that the only reason for no job is
// that there is no mail, so a session may wait for some. Caller holds s.mu.
func (s *Scheduler) nextLocked(name string) (j *job, idle bool) {
	d := s.dests[name]
	if d == nil || s.stopping {
		return nil, false
	}
	if len(d.pending) == 0 {
		return nil, true
	}
	// A pause stops new connections (policy.Admit); a session that is
	// still usable goes on at the destination's rate, except during a
	// suspension, which the receiver asked for by name. Sessions above a
	// lowered concurrency drain away.
	if st, ok := s.o.Policy.State(name); ok {
		if st.State == policy.StateSuspended && st.PausedUntil.After(s.now()) {
			return nil, false
		}
		if st.Concurrency > 0 && d.sessions > st.Concurrency {
			return nil, false
		}
	}
	j = d.pending[0]
	d.pending = d.pending[1:]
	s.inMemory -= len(j.items)
	return j, false
}

// waitForMail keeps an idle session's connection for ConnectionIdle: it
// returns the destination's next job as soon as one is queued, or nil
// when the time is up, the scheduler stops, or the session must end for
// another reason (a suspension, a lowered concurrency). An idle session
// holds its policy slot, and the pump counts it: mail that arrives is
// taken at once by the idle sessions, and new ones start only for the
// mail they cannot take. Nothing is held back.
func (s *Scheduler) waitForMail(ctx context.Context, name string) *job {
	if s.o.ConnectionIdle <= 0 {
		return nil
	}
	newTimer := s.o.IdleTimer
	if newTimer == nil {
		newTimer = func(d time.Duration) (<-chan time.Time, func() bool) {
			t := time.NewTimer(d)
			return t.C, t.Stop
		}
	}
	expired, stop := newTimer(s.o.ConnectionIdle)
	defer stop()
	for {
		s.mu.Lock()
		j, idle := s.nextLocked(name)
		if j != nil || !idle {
			s.mu.Unlock()
			return j
		}
		d := s.dests[name]
		if d.arrived == nil {
			d.arrived = make(chan struct{})
		}
		arrived := d.arrived
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-expired:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// paused reports whether policy holds the destination paused or
// suspended now: no new connection may be opened for it, not even by a
// session that already holds a slot.
func (s *Scheduler) paused(name string) bool {
	st, ok := s.o.Policy.State(name)
	return ok && (st.State == policy.StatePaused || st.State == policy.StateSuspended) && st.PausedUntil.After(s.now())
}

// pushFront gives a job back to the head of its destination's line.
func (s *Scheduler) pushFront(name string, j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dests[name]
	if d == nil {
		// The destination was dropped while the job was out (it had no
		// other mail): it comes back with this job.
		d = &dest{name: name}
		s.dests[name] = d
	}
	d.pending = append([]*job{j}, d.pending...)
	s.inMemory += len(j.items)
}

// dropIfIdleLocked forgets a destination with no session and no mail, so
// that the map holds only destinations with work (issue 9 item 27). A
// timer still armed would only pump an empty line. Caller holds s.mu.
func (s *Scheduler) dropIfIdleLocked(d *dest) {
	if d.sessions > 0 || len(d.pending) > 0 || s.dests[d.name] != d {
		return
	}
	if d.timer != nil {
		d.timer.Stop()
	}
	delete(s.dests, d.name)
}

func (s *Scheduler) endSession(ctx context.Context, name string) {
	s.mu.Lock()
	if d := s.dests[name]; d != nil {
		d.sessions--
		if !s.stopping {
			s.dropIfIdleLocked(d)
		}
	}
	s.mu.Unlock()
	s.o.Policy.Release(name)
	s.wg.Done()
	s.pump(ctx, name)
}
