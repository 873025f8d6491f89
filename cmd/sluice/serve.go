package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"sluice/admin"
	"sluice/auth"
	"sluice/cluster"
	"sluice/config"
	"sluice/events"
	"sluice/internal/sdnotify"
	"sluice/mtasts"
	"sluice/policy"
	"sluice/queue"
	"sluice/relay/inbound"
	"sluice/relay/outbound"
	"sluice/resolver"
	"sluice/scheduler"
)

func runServe(args []string, stdout, stderr io.Writer) error {
	// SIGHUP is caught before anything else: operators and `systemctl
	// reload` send it, and its default action kills the process, which
	// would leave the admin socket behind and cut every session.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default: the embedded defaults)")
	newQueue := fs.Bool("new-queue", false, "start with a new, empty queue although this data_dir had one whose file is now missing or empty (its mail is lost)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	cfg, hash, _, err := readConfig(*cfgPath)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	conf := &configState{path: *cfgPath, cfg: cfg, files: fileHashes(cfg),
		status: admin.ConfigStatus{File: *cfgPath, Hash: hash, Loaded: time.Now().UTC()}}
	return adviseQueueFile(serve(ctx, conf, stderr, hup, *newQueue), *cfgPath)
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	l, _ := newLeveledLogger(c, w)
	return l
}

// newLeveledLogger is newLogger with the level a reload may change
// (log.level is reloadable, log.format is not).
func newLeveledLogger(c config.Log, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	lv := new(slog.LevelVar)
	lv.Set(lvl)
	o := &slog.HandlerOptions{Level: lv}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, o)), lv
	}
	return slog.New(slog.NewTextHandler(w, o)), lv
}

// daemon is the running relay: everything serve wires together.
// preflight fills the parts that need neither the queue nor a port; open
// adds the rest.
type daemon struct {
	// cfg is the configuration the daemon started with: authoritative
	// for every restart-only key (listen.*, data_dir...). live is the
	// one in force (a reload changes it), conf what reload needs.
	cfg        *config.Config
	live       atomic.Pointer[config.Config]
	conf       *configState
	level      *slog.LevelVar // log.level, reloadable
	notify     reloadNotifier
	log        *slog.Logger
	queue      *queue.Queue
	policy     *policy.Policy
	cluster    *cluster.Node    // nil unless [cluster] redis is set
	outbound   *outbound.Client // as built at start-up; out is the one in force
	out        *outboundSwitch
	resolver   *resolver.Resolver // DNS for delivery and auth
	sched      *scheduler.Scheduler
	inbound    []*inbound.Server
	admin      *admin.Server
	space      *queue.Space // free space against queue.min_free_space, refreshed by watchSpace
	adminToken string
	started    time.Time
	newQueue   bool // serve --new-queue

	checker   inbound.Checker   // the inbound check as built at start-up (a reload builds others)
	verdicts  *auth.Counters    // the checks' outcome counters, shared by every checker a reload builds
	lint      lintState         // the content lint's counts, shared by every checker a reload builds
	inflight  *inbound.InFlight // limits.max_inflight_bytes, one budget for every listener and reload
	telemetry *admin.Telemetry  // metrics and attempt history; see tel()
	telOnce   sync.Once
	events    *events.Runner // the delivery event sinks ([events])

	// api is the acceptance path of listen.api (nil when off); apiTLS
	// the certificate in force for it (a reload stores the one it read),
	// apiTLSOn whether it serves HTTPS (decided at start-up).
	api      *inbound.Server
	apiTLS   atomic.Pointer[tls.Config]
	apiTLSOn bool

	// The outbound TLS policy's state, shared by every client a reload
	// builds (issue 14): the MTA-STS cache (nil when delivery.mta_sts is
	// off; remade when ca_file changes, see stsCache) and the outcome
	// tally per policy domain (TLS-RPT material).
	stsMu      sync.Mutex
	sts        *mtasts.Cache
	stsPEM     []byte
	tlsResults *outbound.TLSResults

	// The signer of TLS-RPT reports, for the configuration in force
	// (reportSigner).
	rptMu        sync.Mutex
	rptSigner    *auth.Checker
	rptSignerCfg *config.Config
}

// serve runs the relay until ctx is cancelled, then drains: stop
// accepting, answer 421 to open sessions, let deliveries in flight finish
// within shutdown_grace, and leave the queue consistent.
//
// Start-up is all or nothing: the configuration is built (preflight), the
// queue opened and every listener bound before anything serves, so that
// a failure at any step returns at once with the reason, and the process
// exits non-zero instead of running half-started.
func serve(ctx context.Context, conf *configState, logw io.Writer, hup <-chan os.Signal, newQueue bool) error {
	cfg := conf.cfg
	log, level := newLeveledLogger(cfg.Log, logw)
	limit, from := applyMemoryLimit(int64(cfg.MemoryLimit), os.Getenv, debug.SetMemoryLimit)
	log.Info("memory limit", "bytes", limit, "from", from)
	d, err := preflight(cfg, log)
	if err != nil {
		return err
	}
	defer d.resolver.Close()
	d.newQueue, d.conf, d.level = newQueue, conf, level
	d.notify = reloadNotifier{reloading: sdnotify.Reloading, ready: sdnotify.Ready} // no-ops without $NOTIFY_SOCKET
	d.live.Store(cfg)
	if err := d.open(); err != nil {
		return err
	}
	defer d.queue.Close()
	ls, err := d.bind()
	if err != nil {
		return err
	}

	schedCtx, stopSched := context.WithCancel(context.Background())
	sessCtx, stopSessions := context.WithCancel(context.Background())
	defer stopSessions()
	// The cluster's heartbeat runs until the last session ended, then
	// gives this node's slots back (see the end of the drain).
	clusterCtx, stopCluster := context.WithCancel(context.Background())
	clusterDone := make(chan struct{})
	go func() {
		defer close(clusterDone)
		if d.cluster != nil {
			d.cluster.Run(clusterCtx)
		}
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.sched.Run(schedCtx, sessCtx)
	}()
	serving := make([]*acceptWatch, len(ls.smtp))
	for i, l := range ls.smtp {
		srv, w := d.inbound[i], watchAccept(l)
		serving[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(w); err != nil {
				log.Error("listener stopped", "addr", l.Addr().String(), "err", err)
			}
		}()
	}
	// The sinks run until the deliveries of the drain are recorded, so
	// that their events go out too (what is left goes at the next start).
	evCtx, stopEvents := context.WithCancel(context.Background())
	evDone := make(chan struct{})
	go func() {
		defer close(evDone)
		d.events.Run(evCtx)
	}()
	stopAdmin := d.serveAdmin(ls)
	apiSrv := d.serveAPI(ls.msgs)
	// TLS-RPT runs until the deliveries of the drain are tallied, and
	// saves the tally as it stops (the queue closes after it).
	rptCtx, stopRpt := context.WithCancel(context.Background())
	rptDone := make(chan struct{})
	go func() {
		defer close(rptDone)
		if r := d.newReporter(); r != nil {
			r.Run(rptCtx)
		}
	}()
	bg, stopBG := context.WithCancel(context.Background())
	go d.housekeeping(bg)
	go d.refreshSTS(bg, stsRefreshEvery)
	go d.tel().RunTimeline(bg)
	go d.watchSpace(bg, time.Second)
	go d.onHUP(bg, hup)
	// READY=1 once every SMTP listener is served, then the watchdog;
	// STOPPING=1 as the drain begins (systemd, Type=notify).
	notifyStopping := d.notifySystemd(bg, serving)
	log.Info("sluice started", "hostname", cfg.Hostname, "data_dir", cfg.DataDir, "listen", cfg.Listen.SMTP)
	<-ctx.Done()
	notifyStopping()

	graceFor := time.Duration(d.live.Load().ShutdownGrace) // reloadable
	log.Info("shutting down", "grace", graceFor.String())
	stopBG()
	grace, cancel := context.WithTimeout(context.Background(), graceFor)
	defer cancel()
	stopAPI(grace, apiSrv)
	for _, srv := range d.inbound {
		if err := srv.Shutdown(grace); err != nil {
			log.Warn("inbound shutdown", "err", err)
		}
	}
	// go-smtp's Shutdown closes only the listeners its Serve has already
	// registered: a signal that arrives while a Serve goroutine is still
	// starting would leave that listener accepting forever (and wg.Wait
	// with it). Closing them here makes the stop unconditional.
	for _, l := range ls.smtp {
		l.Close()
	}
	stopSched()
	go func() {
		<-grace.Done()
		stopSessions() // deliveries still running past the grace period are cut; their leases return to due
	}()
	wg.Wait()
	stopCluster()
	<-clusterDone
	stopRpt()
	<-rptDone
	stopEvents()
	<-evDone
	stopAdmin()
	log.Info("sluice stopped")
	return nil
}

// joinCluster builds this node's membership of its cluster ([cluster]):
// the heartbeat runs first here, before the scheduler asks anything, so
// that the node starts with the fleet's state and size; a Redis down at
// start-up is a fallback, not a failure (the node delivers on its share).
func (d *daemon) joinCluster(cfg *config.Config, pol *policy.Policy) (*cluster.Node, error) {
	q := d.queue
	n, err := cluster.New(cluster.Options{
		URL: cfg.Cluster.Redis, NodeID: cfg.Cluster.Node(), Prefix: cfg.Cluster.Prefix,
		LeaseTTL: time.Duration(cfg.Cluster.LeaseTTL), Heartbeat: time.Duration(cfg.Cluster.Heartbeat),
		Version: buildVersion(), Policy: pol, Suppress: q.Suppress,
		StateFile: filepath.Join(cfg.DataDir, "cluster-nodes"),
		QueueSize: func() int {
			c, err := q.Counts()
			if err != nil {
				return 0
			}
			return c[queue.StateQueued] + c[queue.StateActive] + c[queue.StateHeld]
		},
		Logger: d.log.With("log", "cluster"),
	})
	if err != nil {
		return nil, err
	}
	q.OnSuppress(n.NoteSuppressed)
	n.Beat()
	return n, nil
}

// watchSpace refreshes the free-space reading every period, so that MAIL
// and /readyz answer from it without a statfs each, and logs each
// crossing of the reserve once.
func (d *daemon) watchSpace(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	was := d.space.Check(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := d.space.Refresh()
		switch {
		case now != nil && was == nil:
			d.log.Warn("below the free-space reserve: new mail gets 452 4.3.1 at MAIL; mail already queued keeps moving", "reason", now.Error())
		case now == nil && was != nil:
			d.log.Info("free space back above the reserve: taking new mail again")
		}
		was = now
	}
}

// ready is the daemon's own readiness check for /readyz and `sluice
// status`: not ready while below the free-space reserve.
func (d *daemon) ready() error {
	if err := d.space.Err(); err != nil {
		return fmt.Errorf("cannot read the free space of %s: %w", d.cfg.DataDir, err)
	}
	return d.space.Check(0)
}

// Start-up compaction. bbolt files never shrink: after a backlog drains,
// most of a big file is free pages. Start-up compacts only when the
// file is at least compactMinSize, less than half of it is live, and the
// live part is at most compactAtStartMax, a copy that takes well under a
// second, so that SMTP is accepted within seconds of a start whatever
// the file (issue 10). A bigger live part is left alone with a warning
// naming the offline command (`sluice queue compact`), which the
// operator runs at a quiet time: the copy would hold back every queued
// delivery and every new message while it runs.
const (
	compactMinSize    = 256 << 20
	compactAtStartMax = 64 << 20
)

// compactAtStart applies the rule above to the queue file at path, with
// the thresholds given (compactMinSize, compactAtStartMax).
func compactAtStart(path string, log *slog.Logger, minSize, maxLive int64) error {
	// A small file (an empty one, one that is missing) is queue.Open's
	// to judge, with --new-queue in mind.
	if fi, err := os.Stat(path); err != nil || fi.Size() < minSize {
		return nil
	}
	u, err := queue.Usage(path)
	if err != nil {
		return err
	}
	if u.Live*2 >= u.Size {
		return nil
	}
	if u.Live > maxLive {
		log.Warn("the queue file is mostly free pages; stop sluice and run `sluice queue compact` at a quiet time to give them back",
			"path", path, "size_mb", u.Size>>20, "live_mb", u.Live>>20)
		return nil
	}
	log.Info("compacting the queue file", "path", path, "size_mb", u.Size>>20, "live_mb", u.Live>>20)
	return queue.Compact(path)
}

// open opens the queue and builds what depends on it: the policy with
// its stored state, the scheduler and the admin server.
func (d *daemon) open() error {
	cfg, log := d.cfg, d.log
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	path := filepath.Join(cfg.DataDir, "queue.db")
	// bbolt files never shrink: compact at start-up when a drained backlog
	// left most of a big file free and the copy is quick (design §5).
	if err := compactAtStart(path, log, compactMinSize, compactAtStartMax); err != nil {
		return err
	}
	qo := queue.OptionsFrom(cfg)
	qo.Path, qo.Logger, qo.NewQueue = path, log, d.newQueue
	q, err := queue.Open(qo)
	if err != nil {
		return err
	}
	d.queue, d.started = q, time.Now()
	// Cached MTA-STS policies past their max_age (RFC 8461 §3.3), of
	// domains not mailed since: the bucket holds live policies only.
	if n, err := q.PruneSTSPolicies(mtasts.ExpiredAt(d.started)); err != nil {
		log.Warn("mtasts: pruning expired policies", "err", err)
	} else if n > 0 {
		log.Info("mtasts: expired policies pruned", "count", n)
	}
	d.space = queue.NewSpace(cfg.DataDir, int64(cfg.Queue.MinFreeSpace), nil)
	pol, err := policy.New(policyOptions(cfg, d.queue, log))
	if err != nil {
		q.Close()
		return fmt.Errorf("policy: %w", err)
	}
	d.policy = pol
	so := scheduler.OptionsFrom(cfg)
	d.out = newOutboundSwitch(d.outbound)
	so.Queue, so.Policy, so.Outbound = d.queue, pol, d.out
	if cfg.Cluster.Redis != "" {
		if d.cluster, err = d.joinCluster(cfg, pol); err != nil {
			q.Close()
			return err
		}
		so.Policy = d.cluster.Gate()
	}
	so.OnAttempt, so.Logger = d.onAttempt, log.With("log", "mail")
	if d.sched, err = scheduler.New(so); err != nil {
		q.Close()
		return fmt.Errorf("scheduler: %w", err)
	}
	d.events = events.New(events.Options{Queue: d.queue, UserAgent: "sluice/" + buildVersion(), Logger: log.With("log", "events"),
		RetryBase: events.DefaultRetryBase, RetryMax: events.DefaultRetryMax, PruneEvery: events.DefaultPruneEvery})
	if err := d.events.Configure(cfg.Events); err != nil {
		q.Close()
		return fmt.Errorf("events: %w", err)
	}
	var cl admin.Cluster
	if d.cluster != nil {
		cl = d.cluster // a nil *cluster.Node in the interface would not be nil
	}
	d.admin = admin.New(admin.Options{
		Cluster: cl,
		Queue:   d.queue, Policy: d.policy, Telemetry: d.tel(), Kick: d.sched.Reconsider, Held: d.sched.Holds, Token: d.adminToken, HTTPHosts: cfg.Listen.HTTPHosts,
		Ready: d.ready, Reload: d.reloadAPI, Config: d.configStatus, Events: d.events,
		Lint:     d.lintReport,
		Hostname: cfg.Hostname, Version: buildVersion(), Started: d.started, Logger: log,
	})
	return nil
}

// listeners are every socket the daemon serves, bound before any serves.
type listeners struct {
	smtp []net.Listener // in the order of d.inbound
	api  net.Listener
	http net.Listener // nil when listen.http is off
	msgs net.Listener // listen.api, the HTTP injection API; nil when off
}

func (ls *listeners) close() {
	for _, l := range append(ls.smtp, ls.api, ls.http, ls.msgs) {
		if l != nil {
			l.Close()
		}
	}
}

// bind opens every listener, or none: on the first failure it closes
// what it opened and returns the reason.
func (d *daemon) bind() (*listeners, error) {
	ls := &listeners{}
	fail := func(err error) (*listeners, error) {
		ls.close()
		return nil, err
	}
	for _, a := range d.inboundAddrs() {
		l, err := net.Listen("tcp", a.addr)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", a.key, err))
		}
		ls.smtp = append(ls.smtp, l)
	}
	l, err := d.admin.ListenAPI(d.cfg.AdminAddress())
	if err != nil {
		return fail(fmt.Errorf("listen.admin: %w", err))
	}
	ls.api = l
	if a := d.cfg.Listen.HTTP; a != "" {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return fail(fmt.Errorf("listen.http: %w", err))
		}
		ls.http = l
	}
	if a := d.cfg.Listen.API; a != "" {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return fail(fmt.Errorf("listen.api: %w", err))
		}
		ls.msgs = l
	}
	return ls, nil
}

// serveAdmin serves the admin API and the read-only HTTP surface on their
// bound listeners. It returns a function that shuts both down.
func (d *daemon) serveAdmin(ls *listeners) (stop func()) {
	servers := []*http.Server{admin.Serve(ls.api, d.admin.APIHandler(), d.log)}
	d.log.Info("admin API listening", "addr", d.cfg.AdminAddress())
	if ls.http != nil {
		servers = append(servers, admin.Serve(ls.http, d.admin.HTTPHandler(ls.http.Addr().String()), d.log))
		d.log.Info("metrics and dashboard listening", "addr", ls.http.Addr().String())
	}
	return func() {
		// In-flight admin requests get a moment; the dashboard's polls
		// are cut.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, s := range servers {
			if err := s.Shutdown(ctx); err != nil {
				s.Close()
			}
		}
	}
}

// housekeeping prunes finished records after their retention period, a
// few times per period (at most hourly), so that a short retention on a
// busy relay keeps the file and its mapped pages at a steady size.
func (d *daemon) housekeeping(ctx context.Context) {
	every := min(max(time.Duration(d.cfg.Queue.Retention)/4, 10*time.Second), time.Hour)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := d.queue.Prune(time.Now()); err != nil {
			d.log.Error("prune failed", "err", err)
		} else if n > 0 {
			d.log.Info("pruned finished messages", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func inboundTLS(c config.TLS) (*tls.Config, error) {
	if c.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: cert_file %s, key_file %s: %w", c.CertFile, c.KeyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

var errNotDir = errors.New("not a directory")
