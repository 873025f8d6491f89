// Package sim runs the relay's real scheduler and policy against model
// receivers in virtual time, so that a control law can be judged over
// thousands of receivers in seconds (issue 11).
//
// A run is one synctest bubble (testing/synctest): the scheduler's
// timers, policy's clock, the model receiver's decisions and the
// simulated network all read the bubble's clock, which jumps to the next
// timer as soon as every goroutine is blocked. Nothing of the scheduler
// or of policy is copied here: scheduler.New and policy.New are built
// from the daemon's own config mapping (config.Parse, OptionsFrom), and
// the simulator only provides what stands around them: an in-memory
// queue (memQueue, behind scheduler.Queue), an outbound whose sessions
// take their replies from a fakemx.Model (the same decisions the network
// fake MX makes, reused, not copied), and a monitor that reads the
// scheduler's own view (scheduler.Inspect) to find starvation.
//
// Promises: a run is repeatable up to the order in which goroutines
// woken at the same virtual instant run (policy's jitter comes from the
// scenario's seed); it never touches the network or the disk; it must be
// called from a test (synctest needs a *testing.T) and may run in
// parallel with others.
package sim

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"sluice/config"
	"sluice/internal/fakemx"
	"sluice/policy"
	"sluice/scheduler"
)

// domain is the receiver's recipient domain.
const domain = "dest.test"

// Defaults of a Scenario's timing, calibrated against bench/throttle on
// loopback (see docs/design-notes.md, "the simulator").
const (
	DefaultLatency = 100 * time.Microsecond // one SMTP command's round trip on loopback
	DefaultCommit  = 2 * time.Millisecond   // one queue commit (group commit with fsync)
	DefaultTick    = 200 * time.Millisecond // the monitor's look at the scheduler
	// StarveAfter: due work at a destination that policy admits, left
	// unstarted longer than this, is starvation (issue 11).
	StarveAfter = time.Second
)

// Scenario is one receiver and the mail sent to it.
type Scenario struct {
	Name string
	N    int // messages, one recipient each
	// Mailboxes > 0 sends the messages to that many mailboxes in turn
	// (for per-mailbox limits); 0 gives each message its own.
	Mailboxes int
	// Arrive spreads the messages' arrival evenly over this span from
	// the start (0: all queued at once).
	Arrive time.Duration
	// Lead is how long the receiver has been up when the first message
	// comes: its windows, outages and schedule count from its own start
	// (as the bench's fake MX starts before the relay).
	Lead time.Duration
	// Receiver is the model receiver's limits and texts (the network
	// parts of fakemx.Options are ignored).
	Receiver fakemx.Options
	// Config is a TOML overlay on the relay's defaults, as a config file
	// would give it (e.g. the bench's scaled [policy] times).
	Config string
	// Latency of one SMTP command and Commit of one queue commit; zero
	// means the default, a negative value none.
	Latency, Commit time.Duration
	// Cap stops the run at this much virtual time (0: 20 times the
	// ideal plus an hour).
	Cap  time.Duration
	Seed uint64
	// Trace keeps a sample of policy's state and the receiver's counts
	// at every look of the monitor (Result.Trace).
	Trace bool
}

// Sample is one look at a run: policy's state of the destination and
// what the receiver counted so far.
type Sample struct {
	At                    time.Duration // since the start
	State                 string        // policy's: open, paused, probing, suspended
	Conc, Active          int
	Rate                  float64 // policy's rate cap, 0 = none
	Delivered, Refused    int     // the receiver's deliveries and refusals (limits, outages, the box)
	Greylisted, Penalized int     // greylist replies; refusals inside the penalty box
	Due, Ready, Sessions  int     // the scheduler's view: due head (1/0), jobs in hand, sessions
}

func (s Sample) String() string {
	return fmt.Sprintf("%8.1fs %-9s conc %2d/%-2d rate %7.1f | delivered %5d refused %4d greylisted %4d boxed %4d | due %d ready %d sessions %d",
		s.At.Seconds(), s.State, s.Active, s.Conc, s.Rate, s.Delivered, s.Refused, s.Greylisted, s.Penalized, s.Due, s.Ready, s.Sessions)
}

// Result is what the receiver saw, and what the monitor found.
type Result struct {
	Scenario   string
	N          int
	Delivered  int           // messages delivered (at least once)
	Done       bool          // every message delivered before the cap
	Time       time.Duration // start to the last delivery (to the end of the run when not all were delivered)
	Ideal      time.Duration // what an ideal sender needs (see ideal)
	Refusals   int           // refused connections, MAILs and RCPTs by limits, outages and the penalty box
	Greylisted int           // greylist replies
	Recipients int           // recipients the receiver saw
	// Starved counts the episodes of due work at a destination that
	// policy admits left unstarted for more than StarveAfter, and
	// MaxStarve is the longest one, as the scheduler's own view shows.
	Starved   int
	MaxStarve time.Duration
	// MaxUntried is the longest time from a recipient's deferral to its
	// next attempt (issue 11: at most retry_max).
	MaxUntried time.Duration
	// What policy's state was while mail was left: the share of the
	// time paused (or suspended, or probing), the mean concurrency, and
	// the mean rate cap over the share of the time under one (Capped).
	Paused, MeanConc, MeanRate, Capped float64
	// Recovery is how long after the receiver's capacity last rose the
	// deliveries took to reach 80 % of it over a second (or to deliver
	// what was left); -1 when it never rose with mail waiting.
	Recovery time.Duration
	Stats    fakemx.Stats
	Trace    []Sample      // Scenario.Trace
	Wall     time.Duration // real time the run took
	start    time.Time
}

// TimeRatio is time to deliver all over the ideal.
func (r Result) TimeRatio() float64 { return ratio(r.Time.Seconds(), r.Ideal.Seconds()) }

// RefusalsPerDelivery is Refusals over delivered recipients.
func (r Result) RefusalsPerDelivery() float64 {
	return ratio(float64(r.Refusals), float64(r.Delivered))
}

// GreylistPerRcpt is greylist replies per recipient seen.
func (r Result) GreylistPerRcpt() float64 {
	return ratio(float64(r.Greylisted), float64(r.Recipients))
}

// Buckets counts first deliveries per bucket of time since the start.
func (r Result) Buckets(bucket time.Duration) []int {
	var out []int
	for _, rc := range r.Stats.Recipients {
		if rc.Deliveries == 0 {
			continue
		}
		i := int(rc.Delivered.Sub(r.start) / bucket)
		for len(out) <= i {
			out = append(out, 0)
		}
		out[i]++
	}
	return out
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

func (r Result) String() string {
	s := fmt.Sprintf("%s: %d/%d in %.1fs (ideal %.1fs, x%.2f), %.3f refusals/delivery, %.2f greylist/rcpt",
		r.Scenario, r.Delivered, r.N, r.Time.Seconds(), r.Ideal.Seconds(), r.TimeRatio(), r.RefusalsPerDelivery(), r.GreylistPerRcpt())
	if r.Recovery >= 0 {
		s += fmt.Sprintf(", 80%% of a raised capacity after %.1fs", r.Recovery.Seconds())
	}
	if r.Starved > 0 {
		s += fmt.Sprintf(", starved %d times (longest %.1fs)", r.Starved, r.MaxStarve.Seconds())
	}
	return s
}

// Run runs sc in a bubble of its own and returns the result. It fails
// t on a scenario or config that does not build.
func Run(t *testing.T, sc Scenario) Result {
	t.Helper()
	var res Result
	wall := time.Now()
	synctest.Test(t, func(t *testing.T) {
		var err error
		if res, err = run(sc); err != nil {
			t.Fatal(err)
		}
	})
	res.Wall = time.Since(wall)
	return res
}

// run is one scenario inside its bubble.
func run(sc Scenario) (Result, error) {
	lat, commit := orDefault(sc.Latency, DefaultLatency), orDefault(sc.Commit, DefaultCommit)
	cfg, err := config.Parse([]byte(sc.Config), "sim.toml", "")
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	m, err := fakemx.NewModel(sc.Receiver, start.Add(-sc.Lead))
	if err != nil {
		return Result{}, err
	}
	quiet := slog.New(slog.DiscardHandler)
	po := policy.OptionsFrom(cfg)
	po.Logger, po.Now, po.Rand = quiet, time.Now, lockedRand(sc.Seed)
	pol, err := policy.New(po)
	if err != nil {
		return Result{}, err
	}
	q := newMemQueue(commit, []byte("Subject: sim\r\n\r\nhello\r\n"))
	for i := range sc.N {
		at := start
		if sc.Arrive > 0 {
			at = start.Add(time.Duration(int64(sc.Arrive) * int64(i) / int64(sc.N)))
		}
		box := i
		if sc.Mailboxes > 0 {
			box = i % sc.Mailboxes
		}
		q.add("bench@sender.test", []string{fmt.Sprintf("user%d@%s", box, domain)}, domain, at)
	}
	out := &simOutbound{m: m, lat: lat, ip: "192.0.2.1"}
	so := scheduler.OptionsFrom(cfg)
	so.Queue, so.Policy, so.Outbound, so.Logger = q, pol, out, quiet
	s, err := scheduler.New(so)
	if err != nil {
		return Result{}, err
	}
	ideal := idealTime(sc, m, lat)
	limit := sc.Cap
	if limit <= 0 {
		limit = 20*ideal + time.Hour
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = s.Run(ctx, ctx)
		close(done)
	}()
	mon := monitor{s: s, pol: pol, out: out, m: m, start: start, trace: sc.Trace, streaks: map[string]*streak{}}
	for next := start.Add(DefaultTick); ; {
		time.Sleep(time.Until(next))
		synctest.Wait()
		now := time.Now()
		fin, _, total := q.finished()
		next = mon.look(ctx, now, fin < total)
		if fin == total || now.Sub(start) >= limit {
			break
		}
		if e := start.Add(limit); next.After(e) {
			next = e
		}
	}
	end := time.Now()
	cancel()
	<-done

	st := m.Stats()
	res := Result{
		Scenario: sc.Name, N: sc.N, Ideal: ideal, Stats: st, start: start,
		Refusals:   st.SessionRefusals + st.RateRefusals + st.OutageRefusals + st.PenaltyRefusals + st.MailboxRefusals,
		Greylisted: st.GreylistReplies, Recipients: len(st.Recipients),
		Starved: mon.starved, MaxStarve: mon.longest, Trace: mon.samples,
		MaxUntried: q.maxUntried(end),
	}
	if b := mon.busy.Seconds(); b > 0 {
		res.Paused = mon.paused.Seconds() / b
		res.MeanConc = mon.concSum / b
	}
	if mon.capped > 0 {
		res.MeanRate = mon.rateSum / mon.capped
		res.Capped = mon.capped / mon.busy.Seconds()
	}
	// Each message has one recipient and its own Message-ID: messages
	// delivered at least once are deliveries.
	res.Delivered = st.Delivered - st.Duplicates
	fin, sent, total := q.finished()
	res.Done = fin == total && sent == total
	if res.Done {
		res.Time = st.LastDelivery.Sub(start)
	} else {
		res.Time = end.Sub(start)
	}
	res.Recovery = recovery(sc, m, st, start, lat, commit)
	return res, nil
}

func orDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// lockedRand is policy's jitter from seed, safe for concurrent use.
func lockedRand(seed uint64) func() float64 {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Float64()
	}
}

// monitor looks at the scheduler between its turns. It finds starvation:
// a destination with due work (a due head, or leased jobs beyond one per
// session) that policy admits (Ready > 0), where nothing starts (no dial,
// no transaction) for longer than StarveAfter. And it keeps, weighted by
// time while mail is left, what policy's state was: paused, concurrency
// and rate, which say what limited a slow run.
type monitor struct {
	s       *scheduler.Scheduler
	pol     *policy.Policy
	out     *simOutbound
	m       *fakemx.Model
	start   time.Time
	trace   bool
	samples []Sample
	streaks map[string]*streak
	starved int
	longest time.Duration

	last                     time.Time
	busy, paused             time.Duration // mail left; and of that, paused, suspended or probing
	concSum, rateSum, capped float64       // concurrency·s, rate·s, seconds under a rate cap
}

type streak struct {
	since   time.Time // the first look at which the work was due, admitted and unstarted
	starts  int64     // the outbound's starts at that look
	counted bool
}

// look takes one look at now and returns when the next one is worth
// taking: a tick ahead while anything is due, open or running, else when
// the earliest due head comes or policy's pause ends, so that a long
// pause costs a few looks, not one per tick.
func (m *monitor) look(ctx context.Context, now time.Time, left bool) time.Time {
	dt := now.Sub(m.last)
	if !left || m.last.IsZero() {
		dt = 0
	}
	m.busy += dt
	m.last = now
	next := now.Add(time.Hour)
	starts := m.out.starts.Load()
	for _, v := range m.s.Inspect(ctx) {
		st := m.streaks[v.Name]
		if st == nil {
			st = &streak{}
			m.streaks[v.Name] = st
		}
		ps, known := m.pol.State(v.Name)
		if m.trace {
			st := m.m.Stats()
			due := 0
			if !v.Head.IsZero() && !v.Head.After(now) {
				due = 1
			}
			m.samples = append(m.samples, Sample{At: now.Sub(m.start), State: ps.State, Conc: ps.Concurrency, Active: ps.Active, Rate: float64(ps.Rate),
				Delivered: st.Delivered, Refused: st.SessionRefusals + st.RateRefusals + st.OutageRefusals + st.PenaltyRefusals + st.MailboxRefusals,
				Greylisted: st.GreylistReplies, Penalized: st.PenaltyRefusals, Due: due, Ready: v.Ready, Sessions: v.Sessions})
		}
		if known && dt > 0 {
			if ps.State != policy.StateOpen {
				m.paused += dt
			}
			m.concSum += float64(ps.Concurrency) * dt.Seconds()
			if ps.Rate > 0 {
				m.rateSum += float64(ps.Rate) * dt.Seconds()
				m.capped += dt.Seconds()
			}
		}
		if v.Sessions > 0 || v.Leasing || v.Ready > 0 {
			next = now // running: look again a tick ahead
		}
		due := (!v.Head.IsZero() && !v.Head.After(now)) || v.Ready > v.Sessions
		if !v.Head.IsZero() && v.Head.After(now) && v.Head.Before(next) {
			next = v.Head
		}
		if !due || v.Leasing {
			*st = streak{}
			continue
		}
		n, at := m.pol.Ready(v.Name)
		if n == 0 {
			*st = streak{}
			if at.IsZero() || !at.After(now) {
				next = now
			} else if at.Before(next) {
				next = at
			}
			continue
		}
		next = now
		if st.since.IsZero() || st.starts != starts {
			*st = streak{since: now, starts: starts}
			continue
		}
		if d := now.Sub(st.since); d > StarveAfter {
			if !st.counted {
				st.counted = true
				m.starved++
			}
			m.longest = max(m.longest, d)
		}
	}
	if tick := now.Add(DefaultTick); next.Before(tick) {
		return tick
	}
	return next
}
