// Command fakemx runs the scriptable fake MX of internal/fakemx for bench
// scripts. It prints its listen address on stdout when ready, serves until
// SIGTERM/SIGINT or -duration, and writes its final statistics as JSON to
// -stats (also served live at GET /stats on -http).
//
// Example: a receiver that allows 3 sessions and 50 messages per second,
// is down from 10s to 25s, and refuses one user:
//
//	fakemx -addr 127.0.0.1:2601 -sessions 3 -rate 50 -outage 10s-25s \
//	    -script 'rcpt:nobody@:550 5.1.1 no such user' -stats stats.json
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fakemx:", err)
		os.Exit(1)
	}
}
