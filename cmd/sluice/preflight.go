package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"sluice/admin"
	"sluice/auth"
	"sluice/config"
	"sluice/policy"
	"sluice/relay/inbound"
	"sluice/relay/outbound"
)

// preflight builds from a validated config everything the daemon needs
// that can be made without opening the queue or binding a port: the
// outbound client, the policy (checked here, rebuilt with its stored
// state by open), the DKIM keys and sender checks, the TLS certificate,
// the inbound servers and the admin token. `serve` starts from its result
// and `config check` builds it and throws it away: one path, so that the
// check refuses every configuration the daemon would refuse. What only
// binding can tell (a port in use) is the daemon's alone; it still fails
// at start-up, before anything serves (see bind).
//
// Independent problems are reported together, one per line. The resolver
// it builds has no goroutine until the first lookup; serve closes it.
func preflight(cfg *config.Config, log *slog.Logger) (*daemon, error) {
	d := &daemon{cfg: cfg, log: log, verdicts: auth.NewCounters(), lint: newLintState(cfg), tlsResults: outbound.NewTLSResults()}
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := policy.New(policyOptions(cfg, nil, log)); err != nil {
		note(fmt.Errorf("policy: %w", err))
	}
	var err error
	d.resolver, err = newResolver(cfg)
	note(err)
	if d.resolver != nil {
		d.outbound, err = outbound.New(d.outboundOptions(cfg))
		note(err)
		d.checker, err = d.newChecker(cfg)
		note(err)
	}
	tlsConfig, err := inboundTLS(cfg.TLS)
	note(err)
	d.adminToken, err = admin.APIToken(cfg.AdminAddress(), cfg.Listen.AdminTokenFile)
	if err != nil {
		note(fmt.Errorf("listen.admin: %w", err))
	}
	note(checkDataDir(cfg.DataDir))
	if len(errs) == 0 {
		note(d.buildInbound(tlsConfig))
	}
	if len(errs) == 0 {
		note(d.buildAPI(tlsConfig))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return d, nil
}

// checkDataDir refuses a data_dir that MkdirAll could not create: the
// path, or its nearest existing ancestor, must be a directory.
func checkDataDir(dir string) error {
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("data_dir %s: %s is %w", dir, p, errNotDir)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("data_dir: %w", err)
		}
		if filepath.Dir(p) == p {
			return nil
		}
	}
}

// inboundAddr is one SMTP listener: its config key and address.
type inboundAddr struct{ key, addr string }

// inboundAddrs are the SMTP listeners that are on, in the order of
// d.inbound.
func (d *daemon) inboundAddrs() []inboundAddr {
	var out []inboundAddr
	for _, a := range []inboundAddr{
		{"listen.smtp", d.cfg.Listen.SMTP},
		{"listen.submission", d.cfg.Listen.Submission},
		{"listen.submissions", d.cfg.Listen.Submissions},
	} {
		if a.addr != "" {
			out = append(out, a)
		}
	}
	return out
}

// buildInbound makes one inbound server per SMTP listener. They reach the
// queue and the scheduler through d, which open fills before any serves.
func (d *daemon) buildInbound(tlsConfig *tls.Config) error {
	opts, err := d.inboundFor(d.cfg, tlsConfig, d.checker)
	if err != nil {
		return err
	}
	for i, o := range opts {
		srv, err := inbound.New(o)
		if err != nil {
			return fmt.Errorf("%s: %w", d.inboundAddrs()[i].key, err)
		}
		d.inbound = append(d.inbound, srv)
	}
	return nil
}

// inboundFor builds and checks the options of every SMTP listener for
// cfg (at start-up and at each reload), in the order of d.inbound. The
// in-flight budget is the daemon's one, made at start-up.
func (d *daemon) inboundFor(cfg *config.Config, tlsConfig *tls.Config, checker inbound.Checker) ([]inbound.Options, error) {
	base, err := d.acceptOptions(cfg, checker)
	if err != nil {
		return nil, err
	}
	base.TLSConfig = tlsConfig
	var out []inbound.Options
	for _, a := range d.inboundAddrs() {
		requireAuth, implTLS := a.key != "listen.smtp", a.key == "listen.submissions"
		if requireAuth && tlsConfig == nil {
			return nil, fmt.Errorf("%s: needs [tls] cert_file and key_file (AUTH is offered only over TLS)", a.key)
		}
		o := base
		o.RequireAuth, o.ImplicitTLS = requireAuth, implTLS
		if err := o.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", a.key, err)
		}
		out = append(out, o)
	}
	return out, nil
}

// acceptOptions are the options of the acceptance path for cfg, shared by
// every SMTP listener and the HTTP API: one store, one checker, one
// in-flight budget (made at start-up), the same hooks.
func (d *daemon) acceptOptions(cfg *config.Config, checker inbound.Checker) (inbound.Options, error) {
	base, err := inboundOptions(cfg, d.log)
	if err != nil {
		return base, err
	}
	if d.inflight == nil {
		d.inflight = base.InFlight
	}
	base.InFlight = d.inflight
	base.Store = queueStore{d}
	base.Check = checker
	base.Suppressed = func(addr string) bool { return d.queue.IsSuppressed(addr) }
	base.OnEnqueue = func(string) { d.sched.Kick() }
	base.OnResult = d.onInbound
	base.Space = func(size int64) error { return d.space.Check(size) }
	return base, nil
}
