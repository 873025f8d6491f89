package main

import (
	"errors"
	"io"
	"time"

	"sluice/admin"
	"sluice/events"
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
		if d.verdicts != nil {
			verdicts = d.verdicts.Snapshot // every checker's, across reloads
		}
		var evs func() (events.Status, error)
		if d.events != nil {
			evs = d.events.Status
		}
		var lintFindings func() map[[2]string]uint64
		var lintChecks func() (uint64, uint64)
		if d.lint.counters != nil {
			lintFindings, lintChecks = d.lint.counters.Snapshot, d.lint.counters.Checks
		}
		var cl admin.Cluster
		if d.cluster != nil {
			cl = d.cluster
		}
		d.telemetry = admin.NewTelemetry(admin.TelemetryOptions{Queue: d.queue, Policy: d.policy, AuthVerdicts: verdicts, TLSSessions: d.tlsResults.Totals,
			LintFindings: lintFindings, LintChecks: lintChecks, Events: evs, Cluster: cl, Logger: d.log})
	})
	return d.telemetry
}
