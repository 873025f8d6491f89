// Package scheduler moves mail from the queue to the wire. One loop keeps,
// per destination, a small ready queue of leased jobs (one transaction
// each: a message's recipients at one domain) and asks policy one
// question per destination, "how many sessions may open now, and when
// should I ask again" (Gate.Ready). It leases from the destination's
// domains, in due order, only what its sessions can start now (one job
// for each session about to take one, one ahead for each busy session),
// so a destination that is paused or saturated is neither read nor
// written until its time comes. The queue tells the loop which domains'
// earliest due times changed (queue.DueWatch); domains are mapped to
// destinations by policy, resolved off the loop. Every reply goes to
// policy.Observe, and its decision goes back to the queue in a group
// commit.
//
// Promises: a recipient is leased (marked in flight) before it is dialled,
// so a crash means a retry, never a loss; an outcome is retried until it
// commits (or shutdown), and the leases the scheduler holds are never
// reclaimed under it, so one process never delivers a recipient twice;
// leases nobody holds any more expire and are retried while running;
// every attempt is logged on one mail-log line; nothing is dialled while
// policy says the destination is paused; a deferred recipient is written
// once per attempt outcome, never because the scheduler moved it; due
// work for an open destination with free capacity starts at once,
// whatever other destinations do (within delivery.max_sessions).
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"sluice/config"
	"sluice/internal/clock"
	"sluice/policy"
	"sluice/queue"
	"sluice/relay/outbound"
	"sluice/reply"
)

// Queue is what the scheduler needs from the durable queue.
type Queue interface {
	// WatchDue starts the feed of the domains whose earliest due time
	// changed and returns it with every domain's current one.
	WatchDue() (queue.DueWatch, map[string]time.Time, error)
	// LeaseDue leases due work of each request's domains, in due order.
	LeaseDue(now time.Time, reqs []queue.LeaseReq) ([][]queue.Item, error)
	// Reclaim returns expired leases that held does not claim to the due
	// index and extends the others (see queue.Queue.Reclaim).
	Reclaim(now time.Time, held func(id string, rcpt int) bool) (int, time.Time, error)
	// ReturnLeases returns every lease held does not claim to the due
	// index, whatever its deadline (domain "" = all).
	ReturnLeases(now time.Time, domain string, held func(id string, rcpt int) bool) (int, error)
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
	// DSN reports whether the next hop offers DSN (RFC 3461): the
	// session then passes NOTIFY and ORCPT on, and a success is the next
	// hop's to report, not ours.
	DSN() bool
	// SameNextHop reports whether mail for domain goes to the same next
	// hop as the session's (same MX host set, route or smarthost, same
	// TLS mode): then the session may carry it (issue 9 item 26).
	SameNextHop(ctx context.Context, domain string) bool
}

// Outbound opens sessions to the next hop of a recipient domain. MXHosts
// groups domains into destinations; the scheduler calls it off its loop,
// at most MaxResolving at a time.
type Outbound interface {
	MXHosts(ctx context.Context, domain string) ([]string, error)
	Dial(ctx context.Context, domain string) (Session, *reply.Reply)
}

// Options configures the scheduler. They are complete: New fills nothing
// in (OptionsFrom maps the config and the package's fixed knobs) and
// refuses what makes no sense.
type Options struct {
	Queue    Queue
	Policy   Policy
	Outbound Outbound

	Hostname         string        // Reporting-MTA of DSNs
	MaxQueueLifetime time.Duration // a recipient still failing after this long expires with a DSN
	// DelayWarning: a recipient still deferred this long after its
	// message arrived gets one delay notice (DSN Action: delayed), at
	// the attempt that finds it so, unless its NOTIFY excludes DELAY
	// (config delivery.delay_warning); 0 = none.
	DelayWarning     time.Duration
	MaxPerConnection int  // messages per outbound connection before a fresh one; 0 = unlimited
	SuppressUnknown  bool // a 5.1.1 bounce puts the address on the suppression list
	// MaxSessions caps the outbound sessions of all destinations together
	// (config delivery.max_sessions): ten thousand destinations in slow
	// start would otherwise open ten thousand connections.
	MaxSessions    int
	MaxResolving   int           // MX lookups for grouping in flight at once (config delivery.resolver_concurrency: the resolver's own bound)
	HoldThreshold  time.Duration // a destination paused longer than this gives its few waiting jobs back to the queue; 0 = any pause does
	MaxInlineWait  time.Duration // a session waits for a rate token this long at most before handing its mail back; 0 = never waits
	ResolveTimeout time.Duration // MX lookup for destination grouping
	// ConnectionIdle: after its last job a session keeps its connection
	// this long for more mail to the same next hop, then QUITs (config
	// delivery.connection_idle; 0 = QUIT at once).
	ConnectionIdle time.Duration

	// OnAttempt, when set, is told about every delivery attempt (metrics).
	OnAttempt func(a Attempt)

	Clock  clock.Clock  // every timer and the time; nil = clock.Real
	Logger *slog.Logger // mail log: one line per delivery attempt; nil = slog.Default()
}

// The scheduler's fixed knobs: not config keys, since they bound memory
// and latency inside the process rather than anything a site tunes. They
// are what OptionsFrom sets; tests may set others.
const (
	DefaultHoldThreshold  = 2 * time.Second  // pauses up to this keep the ready jobs in memory
	DefaultMaxInlineWait  = time.Second      // a rate token up to this far is waited for on the open connection
	DefaultResolveTimeout = 10 * time.Second // one MX lookup for grouping
)

// OptionsFrom maps the config onto Options, with the fixed knobs; the
// caller adds Queue, Policy, Outbound, OnAttempt and Logger.
func OptionsFrom(cfg *config.Config) Options {
	return Options{
		Hostname:         cfg.Hostname,
		MaxQueueLifetime: time.Duration(cfg.Delivery.MaxQueueLifetime),
		DelayWarning:     time.Duration(cfg.Delivery.DelayWarning),
		MaxPerConnection: cfg.Delivery.MaxMessagesPerConnection,
		MaxSessions:      cfg.Delivery.MaxSessions,
		ConnectionIdle:   time.Duration(cfg.Delivery.ConnectionIdle),
		SuppressUnknown:  cfg.Policy.SuppressOnUnknownUser,
		MaxResolving:     cfg.Delivery.ResolverConcurrency,
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
	if o.MaxPerConnection < 0 || o.HoldThreshold < 0 || o.MaxInlineWait < 0 || o.ConnectionIdle < 0 || o.DelayWarning < 0 {
		bad("MaxPerConnection, HoldThreshold, MaxInlineWait, ConnectionIdle and DelayWarning must not be negative")
	}
	if o.MaxSessions < 1 || o.MaxResolving < 1 {
		bad("MaxSessions and MaxResolving must be at least 1")
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
	// First marks the first recipient reported of its transaction: the
	// rate limit meters transactions (one Reserve per message sent), so
	// counting these gives the rate in use.
	First bool
}

// Scheduler is the delivery loop. Create it with New and run it with Run.
type Scheduler struct {
	o    Options
	clk  clock.Clock
	log  *slog.Logger
	kick chan struct{}
	// inspect carries Inspect's requests to the loop.
	inspect chan chan []DestView
	// ping carries Ping's requests to the loop, which closes each.
	ping chan chan struct{}

	// leases is every lease this scheduler holds, for the queue's reaper.
	leases heldLeases
	// stopped is closed when shutdown begins: outcome retries stop.
	stopped chan struct{}
	// after waits for an outcome retry; tests make it immediate.
	after func(time.Duration) <-chan time.Time

	// Owned by the Run goroutine (the loop); see loop.go.
	nextReclaim time.Time
	domains     map[string]*domain // domains with queued work
	wakes       destHeap           // destinations by the time the loop serves them next
	unmapped    domainHeap         // domains without a destination yet, by head
	resolving   int                // MX lookups in flight
	resolved    chan resolution
	pending     []*dest // destinations whose lease request waits for the next batch
	leasing     []*dest // the batch in flight (nil: none)
	leased      chan leaseResult
	orphans     bool    // a lease commit failed: its leases may be in the file all the same
	slotQueue   []*dest // destinations waiting for a session slot (MaxSessions)
	promised    int     // session slots kept for leases in flight (dest.promised)
	// turns counts the loop's turns; quiet is the turn at which it went
	// to sleep with no lease and no lookup in flight (0 while awake), so
	// that tests in virtual time know when a step is over.
	turns, quiet atomic.Uint64
	reconsider   atomic.Bool              // Reconsider was called
	live         atomic.Pointer[Settings] // the reloadable options (Reconfigure)

	mu       sync.Mutex
	dests    map[string]*dest
	dirty    map[*dest]struct{} // destinations a session event asks the loop to serve
	sessions int                // open sessions, all destinations
	yield    bool               // a destination waits for a slot: idle sessions QUIT
	wg       sync.WaitGroup     // sessions
	stopping bool
}

// New checks the options and returns a scheduler; Run starts it.
func New(o Options) (*Scheduler, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	s := &Scheduler{
		o:        o,
		clk:      o.Clock,
		log:      o.Logger,
		kick:     make(chan struct{}, 1),
		inspect:  make(chan chan []DestView),
		ping:     make(chan chan struct{}),
		stopped:  make(chan struct{}),
		domains:  map[string]*domain{},
		resolved: make(chan resolution, o.MaxResolving),
		leased:   make(chan leaseResult, 1),
		dests:    map[string]*dest{},
		dirty:    map[*dest]struct{}{},
	}
	if s.clk == nil {
		s.clk = clock.Real
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.after = func(d time.Duration) <-chan time.Time { return s.clk.NewTimer(d).C() }
	st := o.Settings()
	s.live.Store(&st)
	return s, nil
}

// Kick wakes the loop. It never blocks. The queue's due feed already
// wakes it for every new due time, so a new message needs no Kick.
func (s *Scheduler) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Reconsider has the loop ask policy again about every destination it
// holds back, at once: an operator changed what policy would answer (a
// pause ended by `queue flush --force`, limits raised). It costs one
// policy question per waiting destination; it never blocks.
func (s *Scheduler) Reconsider() {
	s.reconsider.Store(true)
	s.Kick()
}

// now is the scheduler's clock.
func (s *Scheduler) now() time.Time { return s.clk.Now() }
