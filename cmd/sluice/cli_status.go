package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"sluice/admin"
	"sluice/policy"
	"sluice/reply"
)

// runStatus: `sluice status`: exit 0 only when the daemon is up and
// ready, so that it serves as a health check in scripts.
func runStatus(args []string, stdout, stderr io.Writer) error {
	var cf cliFlags
	fs := newFlagSet("status", "status [--json]\n\nUp, version, uptime and queue totals. Exit 0 only when the daemon is ready.", stderr)
	cf.register(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseErr(err)
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: sluice status takes no arguments", errUsage)
	}
	c, ctx, cancel, err := cf.connect()
	if err != nil {
		return err
	}
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return explainErr(c, err)
	}
	if cf.json {
		err = printJSON(stdout, st)
	} else {
		renderStatus(stdout, st)
	}
	if err == nil && !st.Ready {
		return errors.New("daemon is up but not ready: " + st.Reason)
	}
	return err
}

// runExplain: `sluice explain [--stage S] "REPLY LINE"`. It runs the
// classifier locally (with the rules of --config), no daemon needed.
func runExplain(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("explain", `explain [--stage S] [--config FILE] [--json] "REPLY LINE"

The class sluice gives a receiver's reply, the rule that matched, and the reaction.
Stages: connect, greeting, ehlo, starttls, auth, mail, rcpt (default), data, data-end.`, stderr)
	cfgPath := fs.String("config", "", "config file whose [[policy.rule]] entries apply")
	stage := fs.String("stage", "rcpt", "SMTP stage at which the reply was seen")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseErr(err)
	}
	if len(pos) == 0 {
		fs.Usage()
		return fmt.Errorf("%w: give the reply line, quoted", errUsage)
	}
	if !validStage(reply.Stage(*stage)) {
		return fmt.Errorf("%w: unknown stage %q", errUsage, *stage)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	pol, err := policy.New(policyOptions(cfg, nil, slog.New(slog.DiscardHandler)))
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	e := admin.Explain(pol, reply.Stage(*stage), strings.Join(pos, " "))
	if *asJSON {
		return printJSON(stdout, e)
	}
	renderExplain(stdout, e)
	return nil
}

func validStage(s reply.Stage) bool {
	switch s {
	case reply.StageConnect, reply.StageGreeting, reply.StageEHLO, reply.StageSTARTTLS, reply.StageAuth,
		reply.StageMail, reply.StageRcpt, reply.StageData, reply.StageDataEnd:
		return true
	}
	return false
}
