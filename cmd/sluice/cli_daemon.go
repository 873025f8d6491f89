package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"sluice/admin"
	"sluice/scheduler"
)

// cliCmd adapts an operator command: -h printed help and exits 0.
func cliCmd(f func(args []string, stdout, stderr io.Writer) error) func([]string, io.Writer, io.Writer) error {
	return func(args []string, stdout, stderr io.Writer) error {
		if err := f(args, stdout, stderr); !errors.Is(err, errHelp) {
			return err
		}
		return nil
	}
}

// telemetry is built before the scheduler so that its OnAttempt hook can
// be set there; it needs the policy, so it is made lazily on first use.
func (d *daemon) onAttempt(a scheduler.Attempt) { d.tel().OnAttempt(a) }

func (d *daemon) onInbound(accepted bool, reason string, latency time.Duration) {
	d.tel().OnInbound(accepted, reason, latency)
}

func (d *daemon) tel() *admin.Telemetry {
	d.telOnce.Do(func() {
		var verdicts func() map[string]uint64
		if ac, ok := d.checker.(authChecker); ok {
			verdicts = ac.c.Verdicts
		}
		d.telemetry = admin.NewTelemetry(admin.TelemetryOptions{Queue: d.queue, Policy: d.policy, AuthVerdicts: verdicts, Logger: d.log})
	})
	return d.telemetry
}

// startAdmin opens the admin API (listen.admin) and the read-only HTTP
// surface (listen.http). It returns a function that shuts both down (a
// no-op when it failed).
func (d *daemon) startAdmin() (stop func(), err error) {
	stop = func() {}
	srv := admin.New(admin.Options{
		Queue: d.queue, Policy: d.policy, Telemetry: d.tel(), Kick: d.sched.Kick,
		Hostname: d.cfg.Hostname, Version: buildVersion(), Started: d.started, Logger: d.log,
	})
	apiL, err := srv.ListenAPI(d.cfg.AdminAddress(), d.cfg.Listen.AdminTokenFile)
	if err != nil {
		return stop, err
	}
	servers := []*http.Server{admin.Serve(apiL, srv.APIHandler(), d.log)}
	d.log.Info("admin API listening", "addr", d.cfg.AdminAddress())
	if a := d.cfg.Listen.HTTP; a != "" {
		l, err := net.Listen("tcp", a)
		if err != nil {
			servers[0].Close()
			return stop, fmt.Errorf("listen.http %s: %w", a, err)
		}
		servers = append(servers, admin.Serve(l, srv.HTTPHandler(), d.log))
		d.log.Info("metrics and dashboard listening", "addr", l.Addr().String())
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
	}, nil
}
