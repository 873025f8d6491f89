package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"sluice/config"
	"sluice/internal/escape"
	"sluice/queue"
)

// runQueueBackup: `sluice queue backup FILE`, a consistent copy of the
// running daemon's queue (queue.Backup, streamed over the admin API),
// written as the queue file FILE with its spooled bodies in
// <dir of FILE>/spool: a data dir that `queue check --file FILE`,
// `queue export --file FILE` and `serve` read. FILE is replaced only by
// a complete copy that passed the check (queue.SaveBackup).
func runQueueBackup(args []string, stdout, stderr io.Writer) error {
	var cf cliFlags
	fs := newFlagSet("queue backup", queueSubUsage("backup"), stderr)
	cf.register(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseErr(err)
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("%w: sluice queue backup FILE", errUsage)
	}
	file, err := filepath.Abs(pos[0])
	if err != nil {
		return err
	}
	if st, err := os.Stat(file); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory: give the name of the queue file to write, e.g. %s", file, filepath.Join(file, "queue.db"))
	}
	if cf.config != "" {
		// The copy must not land on the live queue: its bodies would
		// mix with the daemon's own, and a restore from it is a copy.
		cfg, err := config.Load(cf.config)
		if err != nil {
			return err
		}
		if sameDir(filepath.Dir(file), cfg.DataDir) {
			return fmt.Errorf("%s is in the daemon's data_dir (%s): write the backup somewhere else", file, cfg.DataDir)
		}
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	// No deadline: a big queue takes as long as the disk needs. An
	// interrupt stops it and leaves FILE as it was.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rc, err := c.Backup(ctx)
	if err != nil {
		return explainErr(c, err)
	}
	defer rc.Close()
	saved, err := queue.SaveBackup(rc, file)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %s was left as it was", file)
		}
		return fmt.Errorf("%w\n%s was left as it was", err, file)
	}
	m := saved.Manifest
	if cf.json {
		return printJSON(stdout, saved)
	}
	if len(saved.Problems) > 0 {
		for _, p := range saved.Problems {
			fmt.Fprintf(stdout, "problem: %s\n", escape.Text(p))
		}
		return fmt.Errorf("the copy has %d problems, and so has the daemon's queue: the copy is %s, and %s was left as it was; see docs/operations.md (recovering a damaged queue)",
			len(saved.Problems), saved.Path, file)
	}
	fmt.Fprintf(stdout, "backup of %d open messages written to %s (%s of queue file, %d bodies in %s); checked: ok\n",
		m.Messages, saved.Path, sizeMB(m.QueueBytes), m.Bodies, saved.SpoolDir)
	return nil
}

// sameDir reports whether a and b name one directory.
func sameDir(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return errors.Join(err1, err2) == nil && os.SameFile(sa, sb)
}

func sizeMB(n int64) string {
	return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
}
