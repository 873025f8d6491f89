// Command sluice-inject submits numbered test messages to an SMTP server
// with several concurrent clients, and records in an append-only file the
// Message-ID of every message the server acknowledged with 250 at end of
// DATA. Crash tests compare that file with what reached the receiver: an
// acknowledged message must never be lost.
//
// Usage:
//
//	sluice-inject -addr 127.0.0.1:2525 -n 2000 -c 20 -size 2048 \
//	    -from a@src.test -to 'user%d@dest.test' -acked FILE [-per-rcpt] [-wrap N]
//
// It prints one summary line: sent, acked, failed, attempts, elapsed, msg/s.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	cfg := config{}
	flag.StringVar(&cfg.Addr, "addr", "127.0.0.1:2525", "SMTP server to submit to")
	flag.IntVar(&cfg.N, "n", 1000, "number of messages")
	flag.IntVar(&cfg.C, "c", 10, "concurrent SMTP clients (one connection each, reused)")
	flag.IntVar(&cfg.Size, "size", 2048, "approximate message size in bytes")
	flag.StringVar(&cfg.From, "from", "a@src.test", "envelope sender")
	flag.StringVar(&cfg.To, "to", "user%d@dest.test", "recipient; %d is replaced by the message (or recipient) number")
	flag.IntVar(&cfg.Rcpts, "rcpts", 1, "recipients per message")
	flag.IntVar(&cfg.Wrap, "wrap", 0, "the number in -to wraps after this many: -to 'u@d%d.test' -wrap 10000 spreads mail over 10,000 domains (0 = never)")
	flag.StringVar(&cfg.Acked, "acked", "", "append the Message-ID of every message acknowledged with 250 to this file")
	flag.BoolVar(&cfg.PerRcpt, "per-rcpt", false, "write one acked line per accepted recipient: \"<Message-ID> <rcpt>\"")
	flag.DurationVar(&cfg.Deadline, "deadline", 60*time.Second, "stop retrying unacknowledged messages after this long")
	flag.StringVar(&cfg.Helo, "helo", "inject.sluice.test", "EHLO name")
	flag.StringVar(&cfg.RunID, "runid", "", "run identifier in Message-IDs (default: random)")
	flag.DurationVar(&cfg.Backoff, "backoff", 50*time.Millisecond, "first wait before a retry; doubles up to 1s")
	flag.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "per SMTP command timeout")
	verbose := flag.Bool("v", false, "log retries")
	flag.Parse()

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	sum, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice-inject:", err)
		os.Exit(1)
	}
	fmt.Println(sum)
}
