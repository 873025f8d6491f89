package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"time"

	"sluice/auth"
	"sluice/config"
	"sluice/mtasts"
	"sluice/policy"
	"sluice/queue"
	"sluice/relay/inbound"
	"sluice/relay/lintcheck"
	"sluice/relay/outbound"
	"sluice/resolver"
)

// This file maps the TOML config onto each package's own Options type.

func policyOptions(cfg *config.Config, store policy.StateStore, log *slog.Logger) policy.Options {
	o := policy.OptionsFrom(cfg)
	o.Store, o.Logger = store, log
	return o
}

// newResolver is the daemon's one DNS resolver (delivery.resolver, or the
// nameservers of /etc/resolv.conf), shared by delivery and auth: one
// cache, one pool of queries in flight.
func newResolver(cfg *config.Config) (*resolver.Resolver, error) {
	o, err := resolver.OptionsFrom(cfg, resolver.ResolvConf)
	if err != nil {
		return nil, fmt.Errorf("delivery.resolver: %w", err)
	}
	return resolver.New(o)
}

// outboundOptions maps cfg onto the outbound client's options, with the
// daemon's resolver, its MTA-STS cache (nil when delivery.mta_sts is
// off) and its TLS outcome tally: those two outlive every reload.
func (d *daemon) outboundOptions(cfg *config.Config) outbound.Options {
	o := outbound.OptionsFrom(cfg)
	res := d.resolver
	o.Logger, o.Resolver, o.TLSResults = d.log, res, d.tlsResults
	if cfg.Delivery.MTASTS {
		o.MTASTS = d.stsCache(cfg)
	}
	if cfg.Delivery.ResolverDNSSEC {
		// DANE (RFC 7672) only where the AD bit can be trusted: the
		// config layer accepts resolver_dnssec for a loopback resolver
		// only.
		o.DANE = &outbound.DANESource{Resolver: res}
	}
	return o
}

// stsCache is the MTA-STS cache for cfg: one per daemon, made again
// only when delivery.ca_file's certificates change (the policy fetches
// verify against them). Its policies persist in the queue file once the
// queue is open (stsStore); the memory cache goes with a remade one.
func (d *daemon) stsCache(cfg *config.Config) *mtasts.Cache {
	d.stsMu.Lock()
	defer d.stsMu.Unlock()
	if d.sts != nil && bytes.Equal(d.stsPEM, cfg.Delivery.CAPEM) {
		return d.sts
	}
	roots, _ := cfg.Delivery.RootCAs() // validated at load
	c, err := mtasts.New(mtasts.Options{Resolver: d.resolver, HTTP: mtasts.NewHTTPClient(roots, resolvingDialer(d.resolver, cfg.Delivery.MTASTSPort), mtasts.FetchTimeout),
		Store: stsStore{d}, Logger: d.log, Results: d.tlsResults})
	if err != nil {
		return nil // never: the resolver is set
	}
	d.sts, d.stsPEM = c, bytes.Clone(cfg.Delivery.CAPEM)
	return c
}

// stsStore keeps MTA-STS policies in the queue file. It holds the daemon,
// not the queue: the outbound client is built by preflight, before the
// queue is open; until then policies live in memory only.
type stsStore struct{ d *daemon }

func (s stsStore) LoadSTSPolicy(domain string) ([]byte, error) {
	if q := s.d.queue; q != nil {
		return q.LoadSTSPolicy(domain)
	}
	return nil, nil
}

func (s stsStore) SaveSTSPolicy(domain string, v []byte) error {
	if q := s.d.queue; q != nil {
		return q.SaveSTSPolicy(domain, v)
	}
	return nil
}

func (s stsStore) DeleteSTSPolicy(domain string) error {
	if q := s.d.queue; q != nil {
		return q.DeleteSTSPolicy(domain)
	}
	return nil
}

func inboundOptions(cfg *config.Config, log *slog.Logger) (inbound.Options, error) {
	o, err := inbound.OptionsFrom(cfg)
	o.Logger = log
	return o, err
}

func authOptions(cfg *config.Config, log *slog.Logger, res auth.Resolver) auth.Options {
	o := auth.OptionsFrom(cfg)
	o.Logger, o.Resolver = log, res
	return o
}

// newChecker returns the acceptance-time checks for cfg: the auth
// pre-check (nil when auth is off and there is nothing to sign), then the
// content lint (nil when lint.mode is off). Their counters are the
// daemon's, shared by every checker a reload builds.
func (d *daemon) newChecker(cfg *config.Config) (inbound.Checker, error) {
	var checks inbound.Checks
	a, err := newAuthChecker(cfg, d.log, d.resolver, d.verdicts)
	if err != nil {
		return nil, err
	}
	if a != nil {
		checks = append(checks, a)
	}
	l, err := d.lint.checker(cfg, d.log)
	if err != nil {
		return nil, err
	}
	if l != nil {
		checks = append(checks, l)
	}
	switch len(checks) {
	case 0:
		return nil, nil
	case 1:
		return checks[0], nil
	}
	return checks, nil
}

// newAuthChecker returns the auth pre-check, or nil when auth is off and
// there is nothing to sign. Its outcome counters go to counters.
func newAuthChecker(cfg *config.Config, log *slog.Logger, res *resolver.Resolver, counters *auth.Counters) (inbound.Checker, error) {
	if cfg.Auth.Mode == "off" && len(cfg.Auth.DKIM) == 0 && len(cfg.Access.Users) == 0 {
		return nil, nil
	}
	o := authOptions(cfg, log, res.Compat())
	o.Counters = counters
	c, err := auth.New(o)
	if err != nil {
		return nil, err // auth's errors name their package and key
	}
	return authChecker{c}, nil
}

// lintState is what the content lint keeps across reloads: the bulk
// counter, the findings tally, the metric's counters and warn mode's CPU
// budget (one owner each, the daemon; a reload changes the budget's
// share).
type lintState struct {
	bulk     *lintcheck.Bulk
	tally    *lintcheck.Tally
	counters *lintcheck.Counters
	budget   *lintcheck.Budget
}

func newLintState(cfg *config.Config) lintState {
	return lintState{bulk: lintcheck.NewBulk(lintcheck.BulkDomains), tally: lintcheck.NewTally(lintcheck.TallyDomains), counters: lintcheck.NewCounters(),
		budget: lintcheck.NewBudget(runtime.GOMAXPROCS(0), float64(cfg.Lint.WarnBudget), time.Now())}
}

// checker is the content lint for cfg, or nil when lint.mode is off.
func (s lintState) checker(cfg *config.Config, log *slog.Logger) (inbound.Checker, error) {
	if cfg.Lint.Mode == lintcheck.ModeOff {
		return nil, nil
	}
	o := lintcheck.OptionsFrom(cfg)
	o.Bulk, o.Tally, o.Counters, o.Budget, o.Logger = s.bulk, s.tally, s.counters, s.budget, log
	c, err := lintcheck.New(o)
	if err != nil {
		return nil, err
	}
	return lintChecker{c}, nil
}

// lintReport is the tally as `domains` and the dashboard show it: the
// most affected sender domains, with the mode in force.
func (d *daemon) lintReport() lintcheck.Report {
	cfg := d.live.Load()
	if cfg == nil {
		cfg = d.cfg
	}
	r := d.lint.tally.Report(time.Now(), d.lint.bulk, lintReportSenders)
	r.Mode = cfg.Lint.Mode
	return r
}

// lintReportSenders bounds the sender domains `domains` and the
// dashboard list: the ones with the most findings.
const lintReportSenders = 50

// lintChecker adapts lintcheck.Checker to the inbound server's Checker
// seam.
type lintChecker struct{ c *lintcheck.Checker }

func (l lintChecker) Check(ctx context.Context, m *inbound.Message) error {
	return l.c.Check(ctx, lintcheck.Input{MailFrom: m.From, Header: m.Header, Open: m.Content.Open})
}

// authChecker adapts auth.Checker to the inbound server's Checker seam.
type authChecker struct{ c *auth.Checker }

func (a authChecker) Check(ctx context.Context, m *inbound.Message) error {
	sigs, _, err := a.c.Check(ctx, auth.Input{MailFrom: m.From, User: m.User, Header: m.Header, Open: m.Content.Open})
	if err != nil {
		return err
	}
	m.Prepend = sigs
	return nil
}

// queueStore adapts the daemon's queue to the inbound server's Store
// seam. It holds the daemon, not the queue: the inbound servers are built
// by preflight, before the queue is open.
type queueStore struct{ d *daemon }

func (s queueStore) NewSpool() inbound.Spool { return s.d.queue.NewSpool() }

func (s queueStore) Enqueue(ctx context.Context, m *inbound.Message) (string, error) {
	sp, ok := m.Content.(*queue.Spool)
	if !ok {
		return "", fmt.Errorf("enqueue: message content %T does not come from the queue", m.Content)
	}
	client := ""
	if m.ClientAddr.IsValid() {
		client = m.ClientAddr.String()
	}
	nm := queue.NewMessage{
		From: m.From, Rcpts: m.Rcpts, Body: m.Prepend, Spool: sp, ClientAddr: client,
		Helo: m.Helo, User: m.User, SMTPUTF8: m.SMTPUTF8, RequireTLS: m.RequireTLS, DSN: m.DSN, RcptDSN: m.RcptDSN,
	}
	if m.IdempotencyKey != "" {
		nm.Idempotency = &queue.Idempotency{Key: m.IdempotencyKey, Fingerprint: m.Fingerprint}
	}
	return s.d.queue.Enqueue(ctx, nm)
}

// Idempotent looks an HTTP API idempotency key up (inbound.Submit asks
// before checking and signing a retry).
func (s queueStore) Idempotent(key string, fp [32]byte) (string, error) {
	return s.d.queue.Idempotent(queue.Idempotency{Key: key, Fingerprint: fp})
}

// resolvingDialer is the dialer of sluice's own HTTPS clients (MTA-STS
// policy fetches, TLS-RPT report POSTs): the host name is resolved
// through the daemon's resolver (delivery.resolver), the one DNS view
// delivery uses, not through the system's; the addresses are tried in
// turn. port, when not 0, replaces the URL's: delivery.mta_sts_port, a
// lab setting the config layer allows with a loopback resolver only.
// The URL, its host name and the certificate check are unchanged.
func resolvingDialer(res *resolver.Resolver, port int) mtasts.DialContext {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if port != 0 {
			p = strconv.Itoa(port)
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			return d.DialContext(ctx, network, net.JoinHostPort(ip.String(), p))
		}
		ans, err := res.Addrs(ctx, host)
		if err != nil {
			return nil, err
		}
		if len(ans.Addrs) == 0 {
			return nil, &net.DNSError{Err: "no address", Name: host, IsNotFound: true}
		}
		var last error
		for _, a := range ans.Addrs {
			c, err := d.DialContext(ctx, network, net.JoinHostPort(a.String(), p))
			if err == nil {
				return c, nil
			}
			last = err
		}
		return nil, last
	}
}

// stsRefreshEvery is how often the MTA-STS policies due for a refresh
// are fetched in the background (mtasts.Cache.Refresh).
const stsRefreshEvery = time.Hour

// refreshSTS refreshes the due MTA-STS policies every period, off the
// delivery path (RFC 8461 §3.3), with the cache in force (nil while
// delivery.mta_sts is off).
func (d *daemon) refreshSTS(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.stsMu.Lock()
		c := d.sts
		d.stsMu.Unlock()
		if c == nil || !d.live.Load().Delivery.MTASTS {
			continue
		}
		if n := c.Refresh(ctx); n > 0 {
			d.log.Info("mtasts: policies refreshed in the background", "due", n)
		}
	}
}
