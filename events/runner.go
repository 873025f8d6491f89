package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"sluice/config"
	"sluice/internal/clock"
	"sluice/policy"
	"sluice/queue"
)

// Options configures New. They are complete: New fills nothing in but
// the nil seams.
type Options struct {
	Queue *queue.Queue
	// UserAgent of the webhook POSTs.
	UserAgent string
	// Stdout is where file = "-" writes (nil: os.Stdout).
	Stdout io.Writer
	// Clock times the retries and the pruning (nil: clock.Real).
	Clock  clock.Clock
	Logger *slog.Logger
	// RetryBase and RetryMax bound the exponential backoff of a failing
	// sink (policy.RetryDelay: base·2^(n-1), jittered, capped).
	RetryBase, RetryMax time.Duration
	// PruneEvery is the interval of the retention pruning.
	PruneEvery time.Duration
}

// The backoff and pruning of the daemon.
const (
	DefaultRetryBase  = time.Second
	DefaultRetryMax   = 5 * time.Minute
	DefaultPruneEvery = time.Minute
)

// Runner runs the configured sinks. Configure may be called at any time
// (a reload); Run runs them until its context ends.
type Runner struct {
	o   Options
	log *slog.Logger

	mu      sync.Mutex
	cfg     config.Events
	sinks   map[string]*sinkRun
	runCtx  context.Context // nil until Run
	stopped bool
}

// New returns a runner with no sink.
func New(o Options) *Runner {
	if o.Clock == nil {
		o.Clock = clock.Real
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	return &Runner{o: o, log: o.Logger, sinks: map[string]*sinkRun{}}
}

// sinkRun is one running sink: its loop goroutine and its counters.
type sinkRun struct {
	name, kind, display string
	cfg                 any // what it was built from, to see a change
	types               []string
	batch, inflight     int
	s                   sink

	cancel context.CancelFunc
	done   chan struct{}

	sent, failures atomic.Uint64
	mu             sync.Mutex
	lastErr        string
	lastErrAt      time.Time
	lastOK         time.Time
}

// WebhookSink and FileSink name sinks in the outbox (their cursors).
func WebhookSink(url string) string { return "webhook:" + url }
func FileSink(path string) string   { return "file:" + path }

// Configure applies the [events] section: the queue stores events while
// a sink is configured; sinks that are new or changed (re)start, removed
// ones stop. The file sink reopens its file at every call, so that a
// reload after logrotate moves it to the new file.
func (r *Runner) Configure(c config.Events) error {
	want := map[string]*sinkRun{}
	var names []string
	for _, w := range c.Webhooks {
		sr := &sinkRun{name: WebhookSink(w.URL), kind: "webhook", display: SafeURL(w.URL), cfg: w,
			types: w.Events, batch: w.Batch, inflight: webhookInflight}
		want[sr.name] = sr
		names = append(names, sr.name)
	}
	if c.File != "" {
		sr := &sinkRun{name: FileSink(c.File), kind: "file", display: c.File, cfg: c.File, batch: 1000, inflight: 1}
		want[sr.name] = sr
		names = append(names, sr.name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Build what is new first: a file that cannot be opened refuses the
	// whole configuration, and nothing changes.
	var built []*sinkRun
	for name, sr := range want {
		if old, ok := r.sinks[name]; ok && old.kind == "webhook" && reflect.DeepEqual(old.cfg, sr.cfg) {
			want[name] = old
			continue
		}
		if err := r.build(sr); err != nil {
			for _, b := range built {
				b.s.close()
			}
			return fmt.Errorf("events: %s: %w", sr.display, err)
		}
		built = append(built, sr)
	}
	qc := queue.EventsConfig{Sinks: names, MaxBytes: int64(c.MaxBytes), Retention: time.Duration(c.Retention)}
	if err := r.o.Queue.ConfigureEvents(qc); err != nil {
		for _, b := range built {
			b.s.close()
		}
		return err
	}
	r.cfg = c
	for name, old := range r.sinks {
		if want[name] != old {
			r.stopSink(old)
			delete(r.sinks, name)
		}
	}
	for _, sr := range built {
		r.sinks[sr.name] = sr
		if r.runCtx != nil && !r.stopped {
			r.startSink(sr)
		}
	}
	return nil
}

// Check reports whether c's sinks can be set up (the file opened), so
// that a reload refuses a configuration whose sink would not start.
func Check(c config.Events) error {
	if c.File == "" || c.File == "-" {
		return nil
	}
	fs, err := newFileSink(c.File, nil)
	if err != nil {
		return err
	}
	fs.close()
	return nil
}

func (r *Runner) build(sr *sinkRun) error {
	switch sr.kind {
	case "webhook":
		sr.s = newWebhook(sr.cfg.(config.Webhook), r.o.UserAgent, r.o.Clock.Now)
	default:
		fs, err := newFileSink(sr.cfg.(string), r.o.Stdout)
		if err != nil {
			return err
		}
		sr.s = fs
	}
	return nil
}

// Run starts the sinks and the pruning and returns when ctx ends, once
// every sink has stopped.
func (r *Runner) Run(ctx context.Context) {
	r.mu.Lock()
	r.runCtx = ctx
	for _, sr := range r.sinks {
		r.startSink(sr)
	}
	r.mu.Unlock()
	r.pruneLoop(ctx)
	r.mu.Lock()
	r.stopped = true
	for _, sr := range r.sinks {
		r.stopSink(sr)
	}
	r.mu.Unlock()
}

func (r *Runner) startSink(sr *sinkRun) {
	ctx, cancel := context.WithCancel(r.runCtx)
	sr.cancel, sr.done = cancel, make(chan struct{})
	go func() {
		defer close(sr.done)
		r.loop(ctx, sr)
	}()
}

// stopSink stops sr's loop and waits for it (its acknowledgements
// included), then closes its destination.
func (r *Runner) stopSink(sr *sinkRun) {
	if sr.cancel != nil {
		sr.cancel()
		<-sr.done
		sr.cancel = nil
	}
	if sr.s != nil {
		sr.s.close()
	}
}

func (r *Runner) pruneLoop(ctx context.Context) {
	t := r.o.Clock.NewTimer(r.o.PruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		for {
			n, err := r.o.Queue.PruneEvents(1000)
			if err != nil {
				if !errors.Is(err, queue.ErrClosed) {
					r.log.Error("events: pruning the outbox", "err", err)
				}
				break
			}
			if n < 1000 || ctx.Err() != nil {
				break
			}
		}
		t.Reset(r.o.PruneEvery)
	}
}

// flight is one batch on its way.
type flight struct {
	last uint64 // the highest sequence number of the batch (filtered out ones included)
	ok   bool   // set before done is closed
	done chan struct{}
}

// loop feeds one sink from its cursor: up to sr.inflight batches at
// once, the cursor moved (one queue write) past every batch at the head
// that has arrived. Batches may arrive out of order; the cursor never
// passes one that has not.
func (r *Runner) loop(ctx context.Context, sr *sinkRun) {
	q := r.o.Queue
	next, err := q.EventCursor(sr.name)
	for attempt := 1; err != nil; attempt++ {
		r.log.Error("events: reading the cursor", "sink", sr.display, "err", err)
		if !r.sleep(ctx, attempt) {
			return
		}
		next, err = q.EventCursor(sr.name)
	}
	var fl []*flight
	readFails := 0
	for {
		wake := q.EventsWait() // before the read: no wake-up is missed
		for len(fl) < sr.inflight {
			evs, err := q.EventsAfter(next, sr.batch)
			if err != nil {
				readFails++
				r.log.Error("events: reading the outbox", "sink", sr.display, "err", err)
				if !r.sleep(ctx, readFails) {
					return
				}
				break
			}
			readFails = 0
			if len(evs) == 0 {
				break
			}
			next = evs[len(evs)-1].Seq()
			f := &flight{last: next, done: make(chan struct{})}
			sel := evs[:0:0]
			for _, e := range evs {
				if wants(sr.types, e.Type) {
					sel = append(sel, e)
				}
			}
			go func() {
				f.ok = r.send(ctx, sr, sel)
				close(f.done)
			}()
			fl = append(fl, f)
		}
		var head <-chan struct{}
		if len(fl) > 0 {
			head = fl[0].done
		}
		if len(fl) == sr.inflight {
			wake = nil // full: wait for the head only
		}
		select {
		case <-ctx.Done():
			for _, f := range fl {
				<-f.done
			}
			return
		case <-wake:
		case <-head:
			n := 0
			for n < len(fl) && closed(fl[n].done) && fl[n].ok {
				n++
			}
			if n == 0 { // the head gave up: ctx ended
				continue
			}
			last := fl[n-1].last
			fl = fl[n:]
			// Not ctx: an acknowledgement of what has arrived is worth
			// committing even as the sink stops.
			if err := q.AckEvents(context.Background(), sr.name, last); err != nil && !errors.Is(err, queue.ErrClosed) {
				r.log.Error("events: moving the cursor", "sink", sr.display, "err", err)
			}
		}
	}
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// send delivers one batch, retrying with exponential backoff until it
// arrives (true) or ctx ends (false).
func (r *Runner) send(ctx context.Context, sr *sinkRun, evs []queue.Event) bool {
	if len(evs) == 0 {
		return true
	}
	for attempt := 1; ; attempt++ {
		err := sr.s.deliver(ctx, evs)
		if err == nil {
			sr.sent.Add(uint64(len(evs)))
			sr.mu.Lock()
			sr.lastOK = r.o.Clock.Now()
			sr.mu.Unlock()
			if attempt > 1 {
				r.log.Info("events: sink delivers again", "sink", sr.display, "first", evs[0].ID, "attempts", attempt)
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		sr.failures.Add(1)
		d := policy.RetryDelay(attempt, r.o.RetryBase, r.o.RetryMax, rand.Float64())
		sr.mu.Lock()
		sr.lastErr, sr.lastErrAt = err.Error(), r.o.Clock.Now()
		sr.mu.Unlock()
		r.log.Warn("events: sink failed; retrying", "sink", sr.display, "err", err,
			"first", evs[0].ID, "last", evs[len(evs)-1].ID, "attempt", attempt, "retry_in", d.Round(time.Millisecond).String())
		t := r.o.Clock.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C():
		}
	}
}

func (r *Runner) sleep(ctx context.Context, attempt int) bool {
	t := r.o.Clock.NewTimer(policy.RetryDelay(attempt, r.o.RetryBase, r.o.RetryMax, rand.Float64()))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// Status is the state of the outbox and of each sink, for `sluice
// status`, `sluice events` and the metrics.
type Status struct {
	On       bool       `json:"on"` // a sink is configured: events are stored
	Bytes    int64      `json:"bytes"`
	MaxBytes int64      `json:"max_bytes"`
	Events   int        `json:"events"`
	LastID   string     `json:"last_id,omitempty"`
	Oldest   *time.Time `json:"oldest,omitempty"`
	// Dropped counts the undelivered events the cap ever dropped;
	// LastDrop is the latest drop.
	Dropped  int64            `json:"dropped"`
	LastDrop *queue.EventDrop `json:"last_drop,omitempty"`
	// Alarm is set while a drop is recent (AlarmFor).
	Alarm string       `json:"alarm,omitempty"`
	Sinks []SinkStatus `json:"sinks,omitempty"`
}

// SinkStatus is one sink's state.
type SinkStatus struct {
	Name      string     `json:"name"` // the URL without user info or query, or the file
	Kind      string     `json:"kind"` // webhook | file
	Pending   int        `json:"pending"`
	Oldest    *time.Time `json:"oldest_pending,omitempty"`
	Sent      uint64     `json:"sent"`
	Failures  uint64     `json:"failures"`
	LastError string     `json:"last_error,omitempty"`
	LastErrAt *time.Time `json:"last_error_at,omitempty"`
	LastOK    *time.Time `json:"last_ok,omitempty"`
}

// AlarmFor is how long a drop keeps the events alarm raised.
const AlarmFor = 24 * time.Hour

// Status reads the outbox and the sinks.
func (r *Runner) Status() (Status, error) {
	st, err := r.o.Queue.EventStats()
	if err != nil {
		return Status{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := Status{On: st.On, Bytes: st.Bytes, MaxBytes: int64(r.cfg.MaxBytes), Events: st.Events, LastID: st.LastID,
		Dropped: st.Dropped, LastDrop: st.LastDrop, Oldest: timePtr(st.Oldest)}
	if d := st.LastDrop; d != nil && r.o.Clock.Now().Sub(d.At) < AlarmFor {
		out.Alarm = fmt.Sprintf("%d undelivered events dropped at %s (IDs %s to %s): the outbox reached events.max_bytes while a sink was failing",
			d.Count, d.At.UTC().Format(time.RFC3339), d.First, d.Last)
	}
	for _, name := range sortedKeys(r.sinks) {
		sr := r.sinks[name]
		b := st.Sinks[name]
		ss := SinkStatus{Name: sr.display, Kind: sr.kind, Pending: b.Pending, Oldest: timePtr(b.Oldest),
			Sent: sr.sent.Load(), Failures: sr.failures.Load()}
		sr.mu.Lock()
		ss.LastError, ss.LastErrAt, ss.LastOK = sr.lastErr, timePtr(sr.lastErrAt), timePtr(sr.lastOK)
		sr.mu.Unlock()
		out.Sinks = append(out.Sinks, ss)
	}
	return out, nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// ReplayResult says what a replay re-sends.
type ReplayResult struct {
	From   string   `json:"from,omitempty"` // first event ID re-sent; "" = none stored since then
	Events int      `json:"events"`
	Sinks  []string `json:"sinks"`
}

// ErrNoSink is returned by Replay when no (matching) sink is configured.
var ErrNoSink = errors.New("events: no such sink configured")

// Replay re-sends every stored event from since on to the sinks (all,
// or the one whose URL or file is sink). Each sink stops, its cursor
// moves back and it starts again: an acknowledgement of the old run
// cannot undo the move.
func (r *Runner) Replay(since time.Time, sinkName string) (ReplayResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var pick []*sinkRun
	for _, name := range sortedKeys(r.sinks) {
		sr := r.sinks[name]
		if sinkName == "" || sinkName == sr.display || WebhookSink(sinkName) == name || FileSink(sinkName) == name {
			pick = append(pick, sr)
		}
	}
	if len(pick) == 0 {
		return ReplayResult{}, ErrNoSink
	}
	var names []string
	res := ReplayResult{}
	for _, sr := range pick {
		if sr.cancel != nil {
			sr.cancel()
			<-sr.done
			sr.cancel = nil
		}
		names = append(names, sr.name)
		res.Sinks = append(res.Sinks, sr.display)
	}
	first, n, err := r.o.Queue.RewindEvents(names, since)
	for _, sr := range pick {
		if r.runCtx != nil && !r.stopped {
			r.startSink(sr)
		}
	}
	if err != nil {
		return ReplayResult{}, err
	}
	res.From, res.Events = first, n
	r.log.Info("events: replay", "since", since.UTC().Format(time.RFC3339), "from", first, "events", n, "sinks", res.Sinks)
	return res, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Tail calls fn for every event after the event numbered after, or,
// when after is negative, committed after the call; in order, until ctx
// ends or fn fails. It needs events to be stored (a sink configured).
func Tail(ctx context.Context, q *queue.Queue, after int64, fn func(queue.Event) error) error {
	next := uint64(max(after, 0))
	if after < 0 {
		st, err := q.EventStats()
		if err != nil {
			return err
		}
		if st.LastID != "" {
			if next, err = queue.ParseEventID(st.LastID); err != nil {
				return err
			}
		}
	}
	for {
		wake := q.EventsWait()
		evs, err := q.EventsAfter(next, 1000)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if err := fn(e); err != nil {
				return err
			}
			next = e.Seq()
		}
		if len(evs) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		}
	}
}
