package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"sluice/admin"
	"sluice/config"
	"sluice/policy"
	"sluice/queue"
	"sluice/relay"
	"sluice/scheduler"
)

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default: the embedded defaults)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return serve(ctx, cfg, stderr)
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	o := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// daemon is the running relay: everything serve wires together.
type daemon struct {
	cfg      *config.Config
	log      *slog.Logger
	queue    *queue.Queue
	policy   *policy.Policy
	outbound *relay.Outbound
	sched    *scheduler.Scheduler
	inbound  []*relay.Inbound
	started  time.Time

	checker   relay.Checker    // the inbound check, for its verdict counters
	telemetry *admin.Telemetry // metrics and attempt history; see tel()
	telOnce   sync.Once
}

// serve runs the relay until ctx is cancelled, then drains: stop
// accepting, answer 421 to open sessions, let deliveries in flight finish
// within shutdown_grace, and leave the queue consistent.
func serve(ctx context.Context, cfg *config.Config, logw io.Writer) error {
	log := newLogger(cfg.Log, logw)
	d, err := newDaemon(cfg, log)
	if err != nil {
		return err
	}
	defer d.queue.Close()

	listeners, err := d.listen()
	if err != nil {
		return err
	}
	schedCtx, stopSched := context.WithCancel(context.Background())
	sessCtx, stopSessions := context.WithCancel(context.Background())
	defer stopSessions()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.sched.Run(schedCtx, sessCtx)
	}()
	for i, l := range listeners {
		srv := d.inbound[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); err != nil {
				log.Error("listener stopped", "addr", l.Addr().String(), "err", err)
			}
		}()
	}
	bg, stopBG := context.WithCancel(context.Background())
	go d.housekeeping(bg)
	stopAdmin, adminErr := d.startAdmin()
	if adminErr != nil {
		log.Error("admin surface failed to start; stopping", "err", adminErr)
	} else {
		log.Info("sluice started", "hostname", cfg.Hostname, "data_dir", cfg.DataDir, "listen", cfg.Listen.SMTP)
		<-ctx.Done()
	}
	log.Info("shutting down", "grace", time.Duration(cfg.ShutdownGrace).String())
	stopBG()
	grace, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownGrace))
	defer cancel()
	for _, srv := range d.inbound {
		if err := srv.Shutdown(grace); err != nil {
			log.Warn("inbound shutdown", "err", err)
		}
	}
	stopSched()
	go func() {
		<-grace.Done()
		stopSessions() // deliveries still running past the grace period are cut; their leases return to due
	}()
	wg.Wait()
	stopAdmin()
	log.Info("sluice stopped")
	return adminErr
}

// compactMinSize is the queue file size below which start-up never compacts.
const compactMinSize = 256 << 20

func newDaemon(cfg *config.Config, log *slog.Logger) (*daemon, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	path := filepath.Join(cfg.DataDir, "queue.db")
	// bbolt files never shrink: compact at start-up when a drained backlog
	// left most of a big file free (design §5).
	if need, err := queue.NeedsCompaction(path, compactMinSize, 0.5); err != nil {
		return nil, err
	} else if need {
		log.Info("compacting the queue file", "path", path)
		if err := queue.Compact(path); err != nil {
			return nil, err
		}
	}
	q, err := queue.Open(queue.Options{
		Path:         path,
		LockTimeout:  time.Duration(cfg.Queue.LockTimeout),
		Retention:    time.Duration(cfg.Queue.Retention),
		MinFreeBytes: int64(cfg.Queue.MinFreeSpace),
		Logger:       log,
	})
	if err != nil {
		return nil, err
	}
	d := &daemon{cfg: cfg, log: log, queue: q, started: time.Now()}
	if err := d.wire(); err != nil {
		q.Close()
		return nil, err
	}
	return d, nil
}

func (d *daemon) wire() error {
	cfg, log := d.cfg, d.log
	pol, err := policy.New(policyOptions(cfg, d.queue, log))
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	d.policy = pol
	out, err := relay.NewOutbound(outboundOptions(cfg, log))
	if err != nil {
		return fmt.Errorf("delivery: %w", err)
	}
	d.outbound = out
	d.sched = scheduler.New(scheduler.Options{
		Queue:            d.queue,
		Policy:           pol,
		Outbound:         scheduler.RelayOutbound(out),
		Hostname:         cfg.Hostname,
		MaxQueueLifetime: time.Duration(cfg.Delivery.MaxQueueLifetime),
		MaxPerConnection: cfg.Delivery.MaxMessagesPerConnection,
		SuppressUnknown:  cfg.Policy.SuppressOnUnknownUser,
		OnAttempt:        d.onAttempt,
		Logger:           log.With("log", "mail"),
	})
	checker, err := newChecker(cfg, log)
	if err != nil {
		return err
	}
	d.checker = checker
	tlsConfig, err := inboundTLS(cfg.TLS)
	if err != nil {
		return err
	}
	base, err := inboundOptions(cfg, log)
	if err != nil {
		return err
	}
	base.TLSConfig = tlsConfig
	base.Store = queueStore{d.queue}
	base.Check = checker
	base.Suppressed = d.queue.IsSuppressed
	base.OnEnqueue = func(string) { d.sched.Kick() }
	base.OnResult = d.onInbound
	type spec struct {
		addr                 string
		requireAuth, implTLS bool
	}
	for _, s := range []spec{{cfg.Listen.SMTP, false, false}, {cfg.Listen.Submission, true, false}, {cfg.Listen.Submissions, true, true}} {
		if s.addr == "" {
			continue
		}
		if (s.requireAuth || s.implTLS) && tlsConfig == nil {
			return fmt.Errorf("listen: submission and submissions need [tls] cert_file and key_file (AUTH is offered only over TLS)")
		}
		o := base
		o.RequireAuth, o.ImplicitTLS = s.requireAuth, s.implTLS
		srv, err := relay.NewInbound(o)
		if err != nil {
			return err
		}
		d.inbound = append(d.inbound, srv)
	}
	return nil
}

// listen opens the inbound listeners in the order of d.inbound.
func (d *daemon) listen() ([]net.Listener, error) {
	var ls []net.Listener
	for _, a := range []string{d.cfg.Listen.SMTP, d.cfg.Listen.Submission, d.cfg.Listen.Submissions} {
		if a == "" {
			continue
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			for _, o := range ls {
				o.Close()
			}
			return nil, fmt.Errorf("listen %s: %w", a, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
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
		return nil, fmt.Errorf("tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// localAddrs lists our own SMTP listeners, so that a next hop that points
// back at us is recognised as a loop (RFC 5321 §5.1).
func localAddrs(cfg *config.Config) []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range []string{cfg.Listen.SMTP, cfg.Listen.Submission, cfg.Listen.Submissions} {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			continue
		}
		if ap.Addr().IsUnspecified() {
			out = append(out, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port()), netip.AddrPortFrom(netip.IPv6Loopback(), ap.Port()))
			continue
		}
		out = append(out, ap)
	}
	return out
}
