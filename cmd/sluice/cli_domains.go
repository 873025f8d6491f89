package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"sluice/admin"
)

// runDomains: `sluice domains [show D]`.
func runDomains(args []string, stdout, stderr io.Writer) error {
	var cf cliFlags
	fs := newFlagSet("domains", "domains [show DESTINATION] [--json]\n\nPer destination: state (open, paused until, probing), concurrency and rate (current/max),\nreplies in the last hour by class, 421s, the learned greylist window and the last reply.\nThe sender-wide alarm shows as a banner. \"show\" adds the recent attempts.", stderr)
	cf.register(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseErr(err)
	}
	c, ctx, cancel, err := cf.connect()
	if err != nil {
		return err
	}
	defer cancel()
	switch {
	case len(pos) == 0:
		d, err := c.Domains(ctx)
		if err != nil {
			return explainErr(c, err)
		}
		if cf.json {
			return printJSON(stdout, d)
		}
		renderDomains(stdout, d, time.Now())
	case len(pos) == 2 && pos[0] == "show":
		d, err := c.Domain(ctx, pos[1])
		if err != nil {
			return explainErr(c, err)
		}
		if cf.json {
			return printJSON(stdout, d)
		}
		renderDomainDetail(stdout, d, time.Now())
	default:
		return fmt.Errorf("%w: sluice domains [show DESTINATION]", errUsage)
	}
	return nil
}

// runLimits: `sluice limits set D [--max-concurrency N] [--rate R]`,
// `sluice limits reset D`.
func runLimits(args []string, stdout, stderr io.Writer) error {
	var cf cliFlags
	fs := newFlagSet("limits", "limits set DESTINATION [--max-concurrency N] [--rate R] | limits reset DESTINATION\n\nRuntime maxima of a destination (or of the destination a domain belongs to).\nThey take effect at once, persist across restarts, and \"reset\" returns to the config.\nRates are N/s, N/m or N/h; \"\" is unlimited.", stderr)
	cf.register(fs)
	maxConc := fs.Int("max-concurrency", 0, "maximum concurrent sessions (>= 1)")
	rateStr := fs.String("rate", "", "maximum rate, e.g. 10/s, 300/m; \"\" = unlimited")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseErr(err)
	}
	if len(pos) != 2 || (pos[0] != "set" && pos[0] != "reset") {
		fs.Usage()
		return fmt.Errorf("%w: sluice limits set|reset DESTINATION", errUsage)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var req admin.LimitsRequest
	if set["max-concurrency"] {
		req.MaxConcurrency = maxConc
	}
	if set["rate"] {
		req.Rate = rateStr
	}
	if pos[0] == "set" && req.MaxConcurrency == nil && req.Rate == nil {
		return fmt.Errorf("%w: limits set needs --max-concurrency and/or --rate", errUsage)
	}
	c, ctx, cancel, err := cf.connect()
	if err != nil {
		return err
	}
	defer cancel()
	var d admin.Destination
	if pos[0] == "set" {
		d, err = c.SetLimits(ctx, pos[1], req)
	} else {
		d, err = c.ResetLimits(ctx, pos[1])
	}
	if err != nil {
		return explainErr(c, err)
	}
	if cf.json {
		return printJSON(stdout, d)
	}
	renderLimits(stdout, d)
	return nil
}

// runSuppress: `sluice suppress list|add ADDR [--reason R]|remove ADDR`.
func runSuppress(args []string, stdout, stderr io.Writer) error {
	var cf cliFlags
	fs := newFlagSet("suppress", "suppress list | add ADDRESS [--reason TEXT] | remove ADDRESS\n\nAddresses on the list are refused at RCPT and never mailed. 5.1.1 bounces add to it.", stderr)
	cf.register(fs)
	reason := fs.String("reason", "", "why (add)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseErr(err)
	}
	ok := len(pos) == 1 && pos[0] == "list" || len(pos) == 2 && (pos[0] == "add" || pos[0] == "remove")
	if !ok {
		fs.Usage()
		return fmt.Errorf("%w: sluice suppress list|add ADDRESS|remove ADDRESS", errUsage)
	}
	c, ctx, cancel, err := cf.connect()
	if err != nil {
		return err
	}
	defer cancel()
	switch pos[0] {
	case "list":
		list, err := c.Suppressions(ctx)
		if err != nil {
			return explainErr(c, err)
		}
		if cf.json {
			return printJSON(stdout, list)
		}
		renderSuppressions(stdout, list)
		return nil
	case "add":
		err = c.Suppress(ctx, pos[1], *reason)
	default:
		err = c.Unsuppress(ctx, pos[1])
	}
	if err != nil {
		return explainErr(c, err)
	}
	if cf.json {
		return printJSON(stdout, admin.Result{Changed: 1})
	}
	fmt.Fprintf(stdout, "%s: %sed\n", esc(pos[1]), map[string]string{"add": "suppress", "remove": "unsuppress"}[pos[0]])
	return nil
}
