package admin

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"sluice/admin/timeline"
	"sluice/events"
	iclock "sluice/internal/clock" // the test helpers name their fake clock "clock"
	"sluice/policy"
	"sluice/queue"
	"sluice/scheduler"
)

// TelemetryOptions configure NewTelemetry.
type TelemetryOptions struct {
	Queue  *queue.Queue
	Policy *policy.Policy
	// AuthVerdicts returns the SPF/DKIM/DMARC outcome counters of the
	// inbound check (auth.Checker.Verdicts); nil when checks are off.
	AuthVerdicts func() map[string]uint64
	// TLSSessions returns outbound TLS session outcomes by policy type
	// ("sts", "tlsa", "no-policy-found") and result ("success" or an RFC
	// 8460 §4.3 result type): outbound.TLSResults.Totals (issue 14).
	TLSSessions func() map[[2]string]uint64
	// LintFindings returns the content lint findings by {finding ID,
	// severity} (lintcheck.Counters.Snapshot, issue 16); nil when lint
	// is not wired.
	LintFindings func() map[[2]string]uint64
	// LintChecks returns the messages lint read and the messages warn
	// mode skipped for its CPU budget, lint.warn_budget
	// (lintcheck.Counters.Checks); nil when lint is not wired.
	LintChecks func() (checked, skippedBudget uint64)
	// Cluster is the node's cluster membership (nil: cluster mode off):
	// its metrics carry a node label, so that a fleet's series stay
	// apart when scraped into one place.
	Cluster Cluster
	// Events reads the event outbox and sinks (nil: no event metrics).
	Events func() (events.Status, error)
	// MaxDestinations bounds the destination label (default 50): the
	// first destinations seen keep their name, the rest are "other".
	// The same bound holds for the destinations whose last hour the
	// dashboard can chart (see timeline).
	MaxDestinations int
	// Clock times the chart's readings of the policy (RunTimeline);
	// nil = clock.Real. Now, when nil, is the Clock's.
	Clock  iclock.Clock
	Now    func() time.Time
	Logger *slog.Logger
}

// Telemetry is what the daemon records for operators: Prometheus metrics
// and the in-memory attempt history behind the dashboard chart. Its
// methods are safe for concurrent use and never block on I/O.
type Telemetry struct {
	History *History
	// Timeline is the last hour of each busy destination's control loop
	// at 10-second resolution (the dashboard's per-destination chart).
	Timeline *timeline.Recorder

	o     TelemetryOptions
	reg   *prometheus.Registry
	dests *labels
	rsns  *labels

	accepted        prometheus.Counter
	rejected        *prometheus.CounterVec
	attempts        *prometheus.CounterVec
	replies421      *prometheus.CounterVec
	senderFixes     *prometheus.CounterVec
	acceptLatency   prometheus.Histogram
	deliveryLatency *prometheus.HistogramVec
	reloads         *prometheus.CounterVec
}

// NewTelemetry builds the metrics on a registry of its own (never the
// global one, so that tests and several daemons in one process do not
// collide).
func NewTelemetry(o TelemetryOptions) *Telemetry {
	if o.Clock == nil {
		o.Clock = iclock.Real
	}
	if o.Now == nil {
		o.Now = o.Clock.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxDestinations < 1 {
		o.MaxDestinations = 50
	}
	t := &Telemetry{
		History:  NewHistory(o.MaxDestinations, o.Now),
		Timeline: timeline.New(o.MaxDestinations, o.Now),
		o:        o,
		reg:      prometheus.NewRegistry(),
		dests:    newLabels(o.MaxDestinations),
		rsns:     newLabels(32),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_inbound_accepted_total", Help: "Messages accepted (250 after DATA).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_inbound_rejected_total", Help: "Messages or transactions refused, by reason.",
		}, []string{"reason"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_delivery_attempts_total", Help: "Delivery attempts per recipient, by destination and reply class.",
		}, []string{"destination", "class"}),
		replies421: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_delivery_421_total", Help: "421 replies from receivers, by destination.",
		}, []string{"destination"}),
		senderFixes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sender_fix_alarms_total", Help: "Receiver replies that point at a fix on our side (auth-fix class), by the fix they name: SPF, DKIM, alignment, PTR, TLS, authentication.",
		}, []string{"fix"}),
		acceptLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_inbound_accept_latency_seconds", Help: "From end of DATA to our reply (checks, signing, durable commit).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		deliveryLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_delivery_latency_seconds", Help: "From acceptance to a final outcome, by status (sent, bounced, expired).",
			Buckets: []float64{1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 5 * 24 * 3600},
		}, []string{"status"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_config_reloads_total", Help: "Configuration reloads (SIGHUP, sluice reload), by result: success, or failure (the file was refused; the previous configuration stays in force).",
		}, []string{"result"}),
	}
	// Both results exist from the start, so that an alert on failures
	// has a series to compare with.
	t.reloads.WithLabelValues("success")
	t.reloads.WithLabelValues("failure")
	t.reg.MustRegister(t.accepted, t.rejected, t.attempts, t.replies421, t.senderFixes, t.acceptLatency, t.deliveryLatency, t.reloads,
		stateCollector{t}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return t
}

// destOfDomain maps a recipient domain to its destination when reading
// the counters, which the queue keeps per domain (the grouping depends on
// MX answers and the config, both of which change): the policy's fresh
// grouping, else the destination the domain was last delivered through,
// else what the policy makes of the domain without MX hosts.
func (t *Telemetry) destOfDomain(domain string) string {
	if p := t.o.Policy; p != nil {
		if d, ok := p.DestinationOf(domain); ok {
			return d
		}
	}
	if d, ok := t.History.DestinationOf(domain); ok {
		return d
	}
	if p := t.o.Policy; p != nil {
		return p.Destination(domain, nil)
	}
	return domain
}

// OnReload counts one configuration reload attempt.
func (t *Telemetry) OnReload(ok bool) {
	if ok {
		t.reloads.WithLabelValues("success").Inc()
	} else {
		t.reloads.WithLabelValues("failure").Inc()
	}
}

// OnAttempt is the scheduler's OnAttempt hook.
func (t *Telemetry) OnAttempt(a scheduler.Attempt) {
	t.History.Observe(a)
	t.observeTimeline(a)
	dest := t.dests.get(a.Dest)
	t.attempts.WithLabelValues(dest, string(a.Class)).Inc()
	if a.Reply.Code == 421 {
		t.replies421.WithLabelValues(dest).Inc()
	}
	if a.Fix != "" {
		t.senderFixes.WithLabelValues(a.Fix).Inc()
	}
	if a.Status != "deferred" {
		t.deliveryLatency.WithLabelValues(a.Status).Observe(a.Delay.Seconds())
	}
}

// observeTimeline counts the attempt in the chart and, after a refusal,
// reads the destination's state at once (at most once a second): the
// cut and the pause a 421 causes then show in the step of the 421, to
// the second, instead of at the next reading, which a pause shorter than
// a step would slip between.
func (t *Telemetry) observeTimeline(a scheduler.Attempt) {
	o := timeline.Refused
	switch {
	case a.Status == "sent":
		o = timeline.Sent
	case a.Reply.Code == 421:
		o = timeline.Reply421
	}
	t.Timeline.Observe(a.Dest, o, a.First)
	if o == timeline.Sent || t.o.Policy == nil || !t.Timeline.WantReading(a.Dest) {
		return
	}
	if st, ok := t.o.Policy.State(a.Dest); ok {
		t.Timeline.Record(sampleOf(st))
	}
}

// RunTimeline reads the policy for the chart at every step until ctx
// ends (see timeline.Recorder.Run).
func (t *Telemetry) RunTimeline(ctx context.Context) {
	if t.o.Policy == nil {
		return
	}
	t.Timeline.Run(ctx, t.o.Clock, func() []timeline.Sample {
		snap := t.o.Policy.Snapshot()
		out := make([]timeline.Sample, len(snap))
		for i, st := range snap {
			out[i] = sampleOf(st)
		}
		return out
	})
}

// sampleOf is the chart's reading of a destination's policy state.
func sampleOf(st policy.DestinationState) timeline.Sample {
	s := timeline.Sample{Name: st.Name, PausedUntil: st.PausedUntil, Concurrency: st.Concurrency, MaxConcurrency: st.MaxConcurrency,
		Active: st.Active, Rate: rateOf(st.Rate), MaxRate: rateOf(st.MaxRate)}
	switch st.State {
	case policy.StateProbing:
		s.State = timeline.Probing
	case policy.StatePaused:
		s.State = timeline.Paused
	case policy.StateSuspended:
		s.State = timeline.Suspended
	}
	return s
}

// OnInbound is the inbound server's OnResult hook: one call per message
// accepted or refused.
func (t *Telemetry) OnInbound(accepted bool, reason string, latency time.Duration) {
	if accepted {
		t.accepted.Inc()
		t.acceptLatency.Observe(latency.Seconds())
		return
	}
	t.rejected.WithLabelValues(t.rsns.get(reason)).Inc()
}

// Handler serves /metrics.
func (t *Telemetry) Handler() http.Handler {
	return promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(t.o.Logger.Handler(), slog.LevelWarn)})
}

var (
	descQueue       = prometheus.NewDesc("sluice_queue_recipients", "Recipients in the queue by state.", []string{"state"}, nil)
	descOldest      = prometheus.NewDesc("sluice_queue_oldest_age_seconds", "Age of the oldest message with an open recipient (0 when none).", nil, nil)
	descConc        = prometheus.NewDesc("sluice_destination_concurrency", "Current concurrency limit of the destination.", []string{"destination"}, nil)
	descConcMax     = prometheus.NewDesc("sluice_destination_max_concurrency", "Maximum concurrency of the destination.", []string{"destination"}, nil)
	descActive      = prometheus.NewDesc("sluice_destination_active_sessions", "Open sessions to the destination.", []string{"destination"}, nil)
	descRate        = prometheus.NewDesc("sluice_destination_rate", "Current rate limit of the destination, messages/s (0 = none).", []string{"destination"}, nil)
	descPaused      = prometheus.NewDesc("sluice_destination_paused", "1 when the destination is paused or suspended (for other: how many are).", []string{"destination"}, nil)
	descAlarm       = prometheus.NewDesc("sluice_sender_alarm", "1 while the sender-wide alarm is raised: many destinations throttle at once.", nil, nil)
	descAuth        = prometheus.NewDesc("sluice_auth_verdicts_total", "Outcomes of the inbound SPF/DKIM/DMARC check.", []string{"outcome"}, nil)
	descTLS         = prometheus.NewDesc("sluice_tls_sessions_total", "Outbound TLS sessions by policy type (sts = MTA-STS, tlsa = DANE, no-policy-found) and result (success, or the RFC 8460 result type of the failure: certificate-host-mismatch, certificate-expired, certificate-not-trusted, starttls-not-supported, validation-failure...). A failure under a policy in force is also a tls-policy attempt.", []string{"policy_type", "result"}, nil)
	descLint        = prometheus.NewDesc("sluice_lint_findings_total", "Content lint findings in messages accepted or refused (every message, whatever lint.warn_interval lets the log say), by finding ID and severity (info, warn, block).", []string{"id", "severity"}, nil)
	descLintChecked = prometheus.NewDesc("sluice_lint_checked_total", "Messages the content lint read (enforce: every message; warn: within lint.warn_budget, so findings are out of these).", nil, nil)
	descLintSkipped = prometheus.NewDesc("sluice_lint_skipped_total", "Messages warn mode did not lint, by reason (budget: lint.warn_budget was spent).", []string{"reason"}, nil)
	descDestsKnown  = prometheus.NewDesc("sluice_destinations", "Destinations known to the policy.", nil, nil)
	descScrapeError = prometheus.NewDesc("sluice_queue_read_errors", "1 when the queue could not be read during this scrape.", nil, nil)
	descEvBytes     = prometheus.NewDesc("sluice_events_outbox_bytes", "Bytes of delivery events in the outbox (cap: events.max_bytes).", nil, nil)
	descEvCount     = prometheus.NewDesc("sluice_events_outbox_events", "Delivery events in the outbox (undelivered, or kept for replay).", nil, nil)
	descEvDropped   = prometheus.NewDesc("sluice_events_dropped_total", "Undelivered delivery events dropped because the outbox reached events.max_bytes (over the queue file's life).", nil, nil)
	descEvAlarm     = prometheus.NewDesc("sluice_events_alarm", "1 while a drop of undelivered events is recent (24h).", nil, nil)
	descEvPending   = prometheus.NewDesc("sluice_events_pending", "Events a sink has not received yet.", []string{"sink"}, nil)
	descEvLag       = prometheus.NewDesc("sluice_events_lag_seconds", "Age of the oldest event a sink has not received yet (0 when none).", []string{"sink"}, nil)
	descEvSent      = prometheus.NewDesc("sluice_events_sent_total", "Events delivered to a sink since start.", []string{"sink"}, nil)
	descEvFailures  = prometheus.NewDesc("sluice_events_send_failures_total", "Failed deliveries of a batch to a sink since start (each retried).", []string{"sink"}, nil)
	descClusterUp   = prometheus.NewDesc("sluice_cluster_redis_up", "1 while the node uses the cluster's shared state in Redis; 0 in local fallback (each destination's limits divided by the live nodes).", []string{"node"}, nil)
	descClusterLive = prometheus.NewDesc("sluice_cluster_live_nodes", "Nodes whose heartbeat is within cluster.lease_ttl, as this node last saw (it divides the limits in fallback).", []string{"node"}, nil)
	descClusterFall = prometheus.NewDesc("sluice_cluster_fallbacks_total", "Times the node fell back to local state because Redis was unreachable.", []string{"node"}, nil)
	descClusterRTT  = prometheus.NewDesc("sluice_cluster_redis_round_trips_total", "Round trips to Redis (the cost of the shared state; compare with deliveries).", []string{"node"}, nil)
	descDestOpen    = prometheus.NewDesc("sluice_destination_open_recipients", "Recipients not finished yet (queued, in flight, held) at the domains of the destination.", []string{"destination"}, nil)
)

// stateCollector reads gauges at scrape time, so that they are never
// stale and cost nothing between scrapes.
type stateCollector struct{ t *Telemetry }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueue, descOldest, descConc, descConcMax, descActive, descRate, descPaused, descAlarm, descAuth, descTLS, descLint, descLintChecked, descLintSkipped, descDestsKnown, descScrapeError, descDestOpen,
		descClusterUp, descClusterLive, descClusterFall, descClusterRTT, descEvBytes, descEvCount, descEvDropped, descEvAlarm, descEvPending, descEvLag, descEvSent, descEvFailures} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.t
	now := t.o.Now()
	readErr := 0.0
	if q := t.o.Queue; q != nil {
		if counts, err := q.Counts(); err == nil {
			for _, s := range queue.AllStates {
				ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(counts[s]), string(s))
			}
		} else {
			readErr = 1
		}
		age := 0.0
		if old, ok, err := q.Oldest(); err == nil && ok {
			age = now.Sub(old).Seconds()
		} else if err != nil {
			readErr = 1
		}
		ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, age)
		// From the per-domain counters: O(domains), never a scan.
		if counts, err := q.DomainCounts(now, nil); err == nil {
			open := map[string]int{}
			for _, c := range counts {
				if n := c.Open(); n > 0 {
					open[t.dests.peek(t.destOfDomain(c.Domain))] += n
				}
			}
			for name, n := range open {
				ch <- prometheus.MustNewConstMetric(descDestOpen, prometheus.GaugeValue, float64(n), name)
			}
		} else {
			readErr = 1
		}
	}
	if t.o.Events != nil {
		if st, err := t.o.Events(); err == nil {
			c.collectEvents(ch, st, now)
		} else {
			readErr = 1
		}
	}
	ch <- prometheus.MustNewConstMetric(descScrapeError, prometheus.GaugeValue, readErr)
	if p := t.o.Policy; p != nil {
		type agg struct{ conc, max, active, rate, paused float64 }
		by := map[string]*agg{}
		snap := p.Snapshot()
		for _, d := range snap {
			name := t.dests.peek(d.Name)
			a := by[name]
			if a == nil {
				a = &agg{}
				by[name] = a
			}
			a.conc += float64(d.Concurrency)
			a.max += float64(d.MaxConcurrency)
			a.active += float64(d.Active)
			a.rate += float64(d.Rate)
			if d.State == policy.StatePaused || d.State == policy.StateSuspended {
				a.paused++
			}
		}
		for name, a := range by {
			ch <- prometheus.MustNewConstMetric(descConc, prometheus.GaugeValue, a.conc, name)
			ch <- prometheus.MustNewConstMetric(descConcMax, prometheus.GaugeValue, a.max, name)
			ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, a.active, name)
			ch <- prometheus.MustNewConstMetric(descRate, prometheus.GaugeValue, a.rate, name)
			ch <- prometheus.MustNewConstMetric(descPaused, prometheus.GaugeValue, a.paused, name)
		}
		ch <- prometheus.MustNewConstMetric(descDestsKnown, prometheus.GaugeValue, float64(len(snap)))
		on, _, _ := p.Alarm()
		v := 0.0
		if on {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descAlarm, prometheus.GaugeValue, v)
	}
	if cl := t.o.Cluster; cl != nil {
		st, node := cl.Stats(), cl.NodeID()
		up := 0.0
		if st.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descClusterUp, prometheus.GaugeValue, up, node)
		ch <- prometheus.MustNewConstMetric(descClusterLive, prometheus.GaugeValue, float64(st.LiveNodes), node)
		ch <- prometheus.MustNewConstMetric(descClusterFall, prometheus.CounterValue, float64(st.Fallbacks), node)
		ch <- prometheus.MustNewConstMetric(descClusterRTT, prometheus.CounterValue, float64(st.RoundTrips), node)
	}
	if f := t.o.AuthVerdicts; f != nil {
		for k, v := range f() {
			ch <- prometheus.MustNewConstMetric(descAuth, prometheus.CounterValue, float64(v), k)
		}
	}
	if f := t.o.LintFindings; f != nil {
		for k, v := range f() {
			ch <- prometheus.MustNewConstMetric(descLint, prometheus.CounterValue, float64(v), k[0], k[1])
		}
	}
	if f := t.o.LintChecks; f != nil {
		checked, skipped := f()
		ch <- prometheus.MustNewConstMetric(descLintChecked, prometheus.CounterValue, float64(checked))
		ch <- prometheus.MustNewConstMetric(descLintSkipped, prometheus.CounterValue, float64(skipped), "budget")
	}
	if f := t.o.TLSSessions; f != nil {
		for k, v := range f() {
			ch <- prometheus.MustNewConstMetric(descTLS, prometheus.CounterValue, float64(v), k[0], k[1])
		}
	}
}

func (c stateCollector) collectEvents(ch chan<- prometheus.Metric, st events.Status, now time.Time) {
	ch <- prometheus.MustNewConstMetric(descEvBytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(descEvCount, prometheus.GaugeValue, float64(st.Events))
	ch <- prometheus.MustNewConstMetric(descEvDropped, prometheus.CounterValue, float64(st.Dropped))
	alarm := 0.0
	if st.Alarm != "" {
		alarm = 1
	}
	ch <- prometheus.MustNewConstMetric(descEvAlarm, prometheus.GaugeValue, alarm)
	for _, s := range st.Sinks {
		lag := 0.0
		if s.Oldest != nil {
			lag = max(0, now.Sub(*s.Oldest).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(descEvPending, prometheus.GaugeValue, float64(s.Pending), s.Name)
		ch <- prometheus.MustNewConstMetric(descEvLag, prometheus.GaugeValue, lag, s.Name)
		ch <- prometheus.MustNewConstMetric(descEvSent, prometheus.CounterValue, float64(s.Sent), s.Name)
		ch <- prometheus.MustNewConstMetric(descEvFailures, prometheus.CounterValue, float64(s.Failures), s.Name)
	}
}
