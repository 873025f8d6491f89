package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"sluice/admin"
)

const queueUsage = `queue COMMAND [flags]

  list [--domain D] [--state S] [--older-than DUR] [--limit N] [--after ID]
                                                                 messages and their recipients, oldest first
  show ID                                                        envelope, recipient states, attempt history
  summary                                                        qshape: domains × message age
  flush [--domain D] [--force]                                   retry queued mail now (--force: paused destinations too, and leases no delivery holds)
  hold ID…|-|--domain D                                          keep mail out of delivery
  release ID…|-|--domain D                                       undo hold; due now
  delete ID…|-|--domain D [--yes]                                drop mail without a DSN (asks first)
  bounce ID…|-|--domain D                                        fail mail with a DSN to the sender
  backup FILE                                                    a consistent copy of the running daemon's queue, taken without stopping it

"-" reads IDs from stdin, one per line. A listing streams as the daemon
reads it, whatever its length; flush, hold, release, delete and bounce
work in pages (new mail is accepted in between) and report their
progress on stderr when they take a while. These commands take --json,
--config FILE, --admin ADDR and --token-file FILE.
` + queueFileUsage

// runQueue: `sluice queue …`. stdin feeds "-" and delete's question.
func runQueue(stdin io.Reader, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, "usage: sluice "+queueUsage)
		if len(args) == 0 {
			return errUsage
		}
		return errHelp
	}
	sub, args := args[0], args[1:]
	if isQueueFileCmd(sub) {
		return runQueueFile(stdin, sub, args, stdout, stderr)
	}
	if sub == "backup" {
		return runQueueBackup(args, stdout, stderr)
	}
	var cf cliFlags
	fs := newFlagSet("queue "+sub, queueSubUsage(sub), stderr)
	cf.register(fs)
	domain := fs.String("domain", "", "only mail to this recipient domain")
	var (
		state, olderThan, after *string
		limit                   *int
		force, yes              *bool
	)
	switch sub {
	case "list":
		state = fs.String("state", "", "only recipients in this state: queued, active, held, sent, bounced, expired, deleted")
		olderThan = fs.String("older-than", "", "only messages received longer ago than this (e.g. 30m, 2d)")
		limit = fs.Int("limit", 0, "at most N messages (0 = all)")
		after = fs.String("after", "", "only messages whose ID sorts after ID: the next page after --limit")
	case "flush":
		force = fs.Bool("force", false, "flush mail for paused destinations too, and return at once the leases no delivery holds")
	case "delete":
		yes = fs.Bool("yes", false, "do not ask for confirmation")
	case "show", "summary", "hold", "release", "bounce":
	default:
		return fmt.Errorf("%w: unknown queue command %q\n\nusage: sluice %s", errUsage, sub, queueUsage)
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseErr(err)
	}
	c, ctx, cancel, err := cf.connect()
	if err != nil {
		return err
	}
	defer cancel()
	now := time.Now()
	wrap := func(err error) error { return explainErr(c, err) }
	// Streamed replies (listings, bulk actions) last as long as their
	// lines keep coming, not the deadline of ctx.
	sctx := context.Background()
	switch sub {
	case "list":
		if len(pos) > 0 {
			return fmt.Errorf("%w: queue list takes no arguments", errUsage)
		}
		var out listOutput = newListPrinter(stdout, now)
		if cf.json {
			out = &jsonArray{w: stdout}
		}
		end, err := c.ListEach(sctx, admin.ListQuery{Domain: *domain, State: *state, OlderThan: *olderThan, Limit: *limit, After: *after}, out.add)
		if err != nil {
			return wrap(err)
		}
		return out.end(end)
	case "show":
		if len(pos) != 1 {
			return fmt.Errorf("%w: sluice queue show ID", errUsage)
		}
		m, err := c.Show(ctx, pos[0])
		if err != nil {
			return wrap(err)
		}
		if cf.json {
			return printJSON(stdout, m)
		}
		renderShow(stdout, m, now)
	case "summary":
		s, err := c.Summary(ctx)
		if err != nil {
			return wrap(err)
		}
		if cf.json {
			return printJSON(stdout, s)
		}
		renderSummary(stdout, s)
	case "flush":
		res, err := c.FlushProgress(sctx, admin.FlushRequest{Domain: *domain, Force: *force}, progressTo(stderr, "flushed", "recipients"))
		if err != nil {
			return wrap(err)
		}
		if cf.json {
			return printJSON(stdout, res)
		}
		fmt.Fprintf(stdout, "flushed %d recipients\n", res.Changed)
		if len(res.Skipped) > 0 {
			fmt.Fprintf(stdout, "left alone (destination paused; --force to flush): %s\n", esc(strings.Join(res.Skipped, " ")))
		}
	default: // hold, release, delete, bounce
		sel, err := selection(stdin, pos, *domain)
		if err != nil {
			return err
		}
		if sub == "delete" && !*yes {
			what := fmt.Sprintf("%d messages", len(sel.IDs))
			if sel.Domain != "" {
				what = "every open message to " + sel.Domain
			}
			if !confirm(stdin, stderr, fmt.Sprintf("delete %s without a DSN? [y/N] ", what)) {
				return fmt.Errorf("not confirmed; nothing deleted (use --yes in scripts)")
			}
		}
		past := map[string]string{"hold": "held", "release": "released", "delete": "deleted", "bounce": "bounced"}[sub]
		res, err := c.ActProgress(sctx, sub, sel, progressTo(stderr, past, "messages"))
		if err != nil {
			if res.Changed > 0 {
				fmt.Fprintf(stderr, "%s %d messages before the error\n", past, res.Changed)
			}
			return wrap(err)
		}
		if cf.json {
			return printJSON(stdout, res)
		}
		fmt.Fprintf(stdout, "%s %d messages\n", past, res.Changed)
	}
	return nil
}

// progressEvery is how often a bulk action's progress is printed.
const progressEvery = time.Second

// progressTo prints the running totals of a bulk action on w, at most
// every progressEvery, so that a long one shows it is moving and a short
// one prints nothing extra.
func progressTo(w io.Writer, past, what string) func(admin.Result) {
	last := time.Now()
	return func(r admin.Result) {
		if now := time.Now(); now.Sub(last) >= progressEvery {
			last = now
			fmt.Fprintf(w, "... %s %d %s so far\n", past, r.Changed, what)
		}
	}
}

// selection reads the IDs of an action: arguments, "-" for stdin, or a
// domain.
func selection(stdin io.Reader, pos []string, domain string) (admin.Selection, error) {
	if domain != "" {
		if len(pos) > 0 {
			return admin.Selection{}, fmt.Errorf("%w: give IDs or --domain, not both", errUsage)
		}
		return admin.Selection{Domain: domain}, nil
	}
	if len(pos) == 1 && pos[0] == "-" {
		var ids []string
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			// Accept mailq-like lines too: the ID is the first field.
			if f := strings.Fields(sc.Text()); len(f) > 0 {
				ids = append(ids, f[0])
			}
		}
		if err := sc.Err(); err != nil {
			return admin.Selection{}, fmt.Errorf("reading IDs from stdin: %w", err)
		}
		pos = ids
	}
	if len(pos) == 0 {
		return admin.Selection{}, fmt.Errorf("%w: no message IDs (give IDs, - for stdin, or --domain D)", errUsage)
	}
	return admin.Selection{IDs: pos}, nil
}

func confirm(stdin io.Reader, stderr io.Writer, prompt string) bool {
	fmt.Fprint(stderr, prompt)
	line, _ := bufio.NewReader(stdin).ReadString('\n')
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes"
}

// queueSubUsage is the usage of one queue command, from queueUsage:
// its syntax, then what it does.
func queueSubUsage(sub string) string {
	for _, l := range strings.Split(queueUsage, "\n") {
		l = strings.TrimSpace(l)
		if f := strings.Fields(l); len(f) > 0 && f[0] == sub {
			syntax, what, _ := strings.Cut(l, "  ")
			return "queue " + syntax + "\n\n" + strings.TrimSpace(what)
		}
	}
	return "queue " + sub + " [flags]"
}
