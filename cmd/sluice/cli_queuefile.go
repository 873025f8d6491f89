package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"sluice/internal/escape"
	"sluice/policy"
	"sluice/queue"
)

// The queue file commands work on the file itself, not through the
// daemon: check, export, import and salvage are for a stopped daemon (a
// damaged file is exactly when the daemon does not run). While a daemon
// holds the file they refuse, saying so.
const queueFileUsage = `
  check                                                          full offline check of the queue file, counters recounted
  export [--tolerant] [--output FILE]                            write every message as a JSON-lines stream
  import [--input FILE]                                          add the messages of an export stream
  salvage [--out FILE]                                           copy every readable message into a new queue file
  compact                                                        rewrite the queue file without its free pages

check, export, import, salvage and compact work on the queue file of a stopped daemon
(--config FILE for its data_dir, or --file PATH); see docs/operations.md.`

func isQueueFileCmd(sub string) bool {
	switch sub {
	case "check", "export", "import", "salvage", "compact":
		return true
	}
	return false
}

// runQueueFile runs one queue file command.
func runQueueFile(stdin io.Reader, sub string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("queue "+sub, queueSubUsage(sub), stderr)
	cfgPath := fs.String("config", "", "config file: the queue file is <data_dir>/queue.db")
	file := fs.String("file", "", "the queue file (default <data_dir>/queue.db of --config, else ./sluice-data/queue.db)")
	var (
		tolerant     *bool
		output, inpt *string
		out          *string
	)
	switch sub {
	case "export":
		tolerant = fs.Bool("tolerant", false, "skip what cannot be read (damaged pages, records, bodies) and report it, instead of failing")
		output = fs.String("output", "", "write the stream to FILE (default: standard output)")
	case "import":
		inpt = fs.String("input", "", "read the stream from FILE (default: standard input)")
	case "salvage":
		out = fs.String("out", "", "write the new queue file here and leave the damaged one in place (default: replace it, keeping the damaged file as queue.db.damaged-TIME)")
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseErr(err)
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: queue %s takes no arguments", errUsage, sub)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	qo := queue.OptionsFrom(cfg)
	qo.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if *file != "" {
		qo.Path = *file
	}
	path := qo.Path
	switch sub {
	case "check":
		return queueCheck(path, *cfgPath, stdout)
	case "compact":
		return queueCompact(path, *cfgPath, stdout)
	case "export":
		w := stdout
		if *output != "" {
			f, err := os.OpenFile(*output, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		rep, err := queue.Export(w, queue.ExportOptions{Path: path, Tolerant: *tolerant, Warn: warnTo(stderr), Limits: policyLimits{}})
		if err != nil {
			return fileCmdErr(err, *cfgPath)
		}
		reportLost(stderr, rep.Lost)
		fmt.Fprintf(stderr, "exported %d messages, %d suppressions, %d destination states, %d runtime limits from %s; %d lost\n",
			rep.Messages, rep.Suppressions, rep.Destinations, rep.Limits, path, len(rep.Lost))
		return nil
	case "import":
		r := stdin
		if *inpt != "" {
			f, err := os.Open(*inpt)
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		q, err := queue.Open(qo)
		if err != nil {
			return fileCmdErr(err, *cfgPath)
		}
		rep, err := q.ImportWith(r, queue.ImportOptions{Limits: policyLimits{}})
		if cerr := q.Close(); err == nil {
			err = cerr
		}
		fmt.Fprintf(stdout, "imported %d messages, %d suppressions, %d destination states, %d runtime limits", rep.Messages, rep.Suppressions, rep.Destinations, rep.Limits)
		if rep.LimitsKept > 0 {
			fmt.Fprintf(stdout, " (%d not set: the queue has its own for those destinations)", rep.LimitsKept)
		}
		fmt.Fprintln(stdout)
		if err == nil && rep.Duplicates > 0 {
			err = refusedDuplicates(stderr, rep)
		}
		return err
	default:
		return queueSalvage(qo, *out, *cfgPath, stdout, stderr)
	}
}

// queueCompact rewrites the queue file without its free pages (bbolt files
// never shrink; start-up compacts only small live parts, see serve.go).
func queueCompact(path, cfgPath string, stdout io.Writer) error {
	before, err := queue.Usage(path)
	if err != nil {
		return fileCmdErr(err, cfgPath)
	}
	if err := queue.Compact(path); err != nil {
		return fileCmdErr(err, cfgPath)
	}
	after, err := queue.Usage(path)
	if err != nil {
		return fileCmdErr(err, cfgPath)
	}
	fmt.Fprintf(stdout, "queue file %s: %d MB, was %d MB\n", path, after.Size>>20, before.Size>>20)
	return nil
}

// refusedDuplicates names the messages an import refused because their
// ID is already in the queue, and makes the command fail: an operator
// (or a script) importing a stream twice, or into the wrong queue, must
// notice, while a re-run after a failed import still stores the rest.
func refusedDuplicates(w io.Writer, rep queue.ImportReport) error {
	for _, id := range rep.DuplicateIDs {
		fmt.Fprintf(w, "refused: %s is already in the queue\n", id)
	}
	if more := rep.Duplicates - len(rep.DuplicateIDs); more > 0 {
		fmt.Fprintf(w, "refused: %d more\n", more)
	}
	return fmt.Errorf("%d messages refused: their IDs are already in the queue (those messages were left as they were; the others were imported)", rep.Duplicates)
}

// policyLimits is the policy's format of runtime limits, for the queue
// export (which keeps destination states opaque).
type policyLimits struct{}

func (policyLimits) Split(state []byte) ([]byte, *queue.RuntimeLimits, error) {
	rest, l, err := policy.SplitLimits(state)
	if err != nil || l == nil {
		return rest, nil, err
	}
	return rest, &queue.RuntimeLimits{MaxConcurrency: l.MaxConcurrency, Rate: float64(l.Rate)}, nil
}

func (policyLimits) Join(state []byte, l queue.RuntimeLimits) ([]byte, bool, error) {
	return policy.JoinLimits(state, policy.Limits{MaxConcurrency: l.MaxConcurrency, Rate: rate.Limit(l.Rate)})
}

func warnTo(w io.Writer) func(string) {
	return func(p string) { fmt.Fprintf(w, "skipped: %s\n", escape.Text(p)) }
}

func reportLost(w io.Writer, lost []queue.LostMessage) {
	for _, l := range lost {
		from := l.From
		if from == "" {
			from = "(unknown)"
		}
		fmt.Fprintf(w, "lost: %s from %s to %s: %s\n", l.ID, escape.Text(from), escape.Text(strings.Join(l.Rcpts, ", ")), l.Why)
	}
}

func queueCheck(path, cfgPath string, stdout io.Writer) error {
	rep, err := queue.CheckPath(path)
	if err != nil {
		return fileCmdErr(err, cfgPath)
	}
	if len(rep.Problems) == 0 {
		fmt.Fprintf(stdout, "queue file %s: ok (%d pages, %d messages; the counters match a recount)\n", path, rep.Pages, rep.Messages)
		return nil
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(stdout, "problem: %s\n", escape.Text(p))
	}
	return fmt.Errorf("queue file %s has %d problems; copy every readable message into a new file with: sluice queue salvage%s (see docs/operations.md)", path, len(rep.Problems), configArg(cfgPath))
}

// queueSalvage is `export --tolerant | import` into a new queue file, in
// one command: the same two code paths, joined by a pipe.
func queueSalvage(qo queue.Options, out, cfgPath string, stdout, stderr io.Writer) error {
	src := qo.Path
	if _, err := os.Stat(src); err != nil {
		return err
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	dst := out
	if dst == "" {
		dst = src + ".salvage-" + stamp
	}
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("%s already exists; give another --out", dst)
	}
	qo.Path = dst
	nq, err := queue.Open(qo)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	type result struct {
		rep queue.ExportReport
		err error
	}
	exported := make(chan result, 1)
	go func() {
		rep, err := queue.Export(pw, queue.ExportOptions{Path: src, Tolerant: true, Warn: warnTo(stderr), Limits: policyLimits{}})
		pw.CloseWithError(err)
		exported <- result{rep, err}
	}()
	irep, ierr := nq.ImportWith(pr, queue.ImportOptions{Limits: policyLimits{}})
	pr.CloseWithError(errors.New("import stopped"))
	ex := <-exported
	cerr := nq.Close()
	_ = os.Remove(queue.MarkerPath(dst))
	switch {
	case ex.err != nil:
		return fileCmdErr(ex.err, cfgPath)
	case ierr != nil:
		return fmt.Errorf("salvage: writing %s: %w", dst, ierr)
	case cerr != nil:
		return cerr
	}
	reportLost(stdout, ex.rep.Lost)
	fmt.Fprintf(stdout, "salvaged %d messages, %d suppressions, %d destination states into %s; %d messages lost, %d damaged places skipped\n",
		irep.Messages, irep.Suppressions, irep.Destinations, dst, len(ex.rep.Lost), ex.rep.Problems)
	if out != "" {
		return nil
	}
	aside := src + ".damaged-" + stamp
	if err := os.Rename(src, aside); err != nil {
		return fmt.Errorf("salvage: moving the damaged file aside: %w (the salvaged queue is %s)", err, dst)
	}
	if err := os.Rename(dst, src); err != nil {
		return fmt.Errorf("salvage: putting %s in place: %w (the damaged file is now %s)", dst, err, aside)
	}
	if d, err := os.Open(filepath.Dir(src)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	fmt.Fprintf(stdout, "the damaged file is now %s; %s holds the salvaged queue: start the daemon again\n", aside, src)
	return nil
}

func configArg(cfgPath string) string {
	if cfgPath == "" {
		return ""
	}
	return " --config " + cfgPath
}

// fileCmdErr adds what to do to the errors of the queue file commands.
func fileCmdErr(err error, cfgPath string) error {
	if errors.Is(err, queue.ErrLocked) {
		return fmt.Errorf("%w\nthe daemon holds the queue file: stop it first (check, export, import and salvage work on the file of a stopped daemon; `sluice queue backup FILE` copies the queue of a running one)", err)
	}
	return adviseQueueFile(err, cfgPath)
}

// adviseQueueFile adds to a damaged, empty or missing queue file what the
// operator should do; other errors pass unchanged.
func adviseQueueFile(err error, cfgPath string) error {
	var fe *queue.FileError
	if !errors.As(err, &fe) {
		return err
	}
	switch fe.Kind {
	case queue.FileDamaged:
		return fmt.Errorf("%w\nsluice will not run on a damaged queue file. Keep the file (do not delete it), then either restore it from a backup, or copy every readable message into a new queue file with:\n  sluice queue salvage%s\n(it moves the damaged file aside; see docs/operations.md)", err, configArg(cfgPath))
	default:
		return fmt.Errorf("%w\nif you have a backup of the queue file, restore it; if the mail in it is lost, start with an empty queue:\n  sluice serve%s --new-queue\n(see docs/operations.md)", err, configArg(cfgPath))
	}
}
