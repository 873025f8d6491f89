package main

import (
	"flag"
	"io"
	"log/slog"
	"time"

	"sluice/internal/fakemx"
)

// config is the parsed command line.
type config struct {
	mx        fakemx.Options
	duration  time.Duration // 0 = until a signal
	statsFile string
	httpAddr  string
}

// repeated collects a repeatable flag through a parser from internal/fakemx.
type repeated[T any] struct {
	parse func(string) (T, error)
	dst   *[]T
}

func (r repeated[T]) String() string { return "" }

func (r repeated[T]) Set(s string) error {
	v, err := r.parse(s)
	if err != nil {
		return err
	}
	*r.dst = append(*r.dst, v)
	return nil
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	o := &cfg.mx
	fs := flag.NewFlagSet("fakemx", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:0", "listen address")
	fs.StringVar(&o.Hostname, "hostname", "fakemx.test", "banner and EHLO name")
	fs.IntVar(&o.MaxSessions, "sessions", 0, "K: concurrent sessions; beyond it 421 at greeting (0 = unlimited)")
	fs.StringVar(&o.SessionsText, "sessions-text", "", "reply beyond -sessions (default "+quote(fakemx.DefaultSessionsText)+")")
	fs.IntVar(&o.RatePerWindow, "rate", 0, "R: messages (MAIL FROM) per -window; beyond it 421 at MAIL (0 = unlimited)")
	fs.StringVar(&o.RateText, "rate-text", "", "reply beyond -rate (default "+quote(fakemx.DefaultRateText)+")")
	fs.DurationVar(&o.Window, "window", time.Second, "rate window (fixed windows from start)")
	fs.DurationVar(&o.Greylist, "greylist", 0, "G: greylist each (IP, sender, recipient) triplet for this long (0 = off)")
	fs.StringVar(&o.GreylistText, "greylist-text", "", "greylist reply; one %d is filled with the seconds left (default "+quote(fakemx.DefaultGreylistText)+")")
	fs.StringVar(&o.OutageText, "outage-text", "", "reply at greeting during an outage (default "+quote(fakemx.DefaultOutageText)+")")
	fs.Var(repeated[fakemx.Window]{fakemx.ParseWindow, &o.Outages}, "outage", "outage window START-END from start, e.g. 10s-25s (repeatable)")
	fs.Var(repeated[fakemx.Limits]{fakemx.ParseLimits, &o.Schedule}, "schedule", "AT:SESSIONS:RATE, e.g. 20s:3:50 (repeatable)")
	fs.Var(repeated[fakemx.Rule]{fakemx.ParseRule, &o.Script}, "script", "STAGE[*N]:MATCH:REPLY, e.g. 'rcpt:foo:550 5.1.1 no such user' (repeatable)")
	fs.Var(&o.Penalty, "penalty", "N:WITHIN:BLOCK[:EXTEND]: after N limit refusals within WITHIN refuse every session for BLOCK, each attempt meanwhile extending it to at least EXTEND ahead, e.g. 5:10s:60s:30s")
	fs.StringVar(&o.PenaltyText, "penalty-text", "", "reply inside the penalty box (default "+quote(fakemx.DefaultPenaltyText)+")")
	fs.IntVar(&o.MailboxRate, "mailbox-rate", 0, "recipients accepted per mailbox per -mailbox-window; beyond it -mailbox-text at RCPT (0 = unlimited)")
	fs.DurationVar(&o.MailboxWindow, "mailbox-window", 0, "per-mailbox window (default -window)")
	fs.StringVar(&o.MailboxText, "mailbox-text", "", "reply beyond -mailbox-rate (default "+quote(fakemx.DefaultMailboxText)+")")
	fs.BoolVar(&o.STARTTLS, "starttls", false, "offer STARTTLS with a self-signed certificate")
	fs.DurationVar(&cfg.duration, "duration", 0, "stop after this long (0 = until SIGTERM/SIGINT)")
	fs.StringVar(&cfg.statsFile, "stats", "", "write the final stats as JSON to this file")
	fs.StringVar(&cfg.httpAddr, "http", "", "serve live stats at GET /stats on this address")
	verbose := fs.Bool("v", false, "debug logging on stderr")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return cfg, nil
}

func quote(s string) string { return `"` + s + `"` }
