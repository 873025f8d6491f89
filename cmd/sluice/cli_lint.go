package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"sluice/config"
	"sluice/lint"
)

const lintUsage = `lint [--json] [--bulk] [--config FILE] [--disable ID,...] [--shorteners DOMAIN,...] FILE|-

Lints a message file (- for standard input) offline, as the relay's [lint]
check does: link shorteners, link text that lies, a From display name that
claims another address or brand, image-only HTML, a missing text part, bulk
without one-click unsubscribe, missing Date/Message-ID/From, a shouting
Subject, 8-bit text without a charset. --config reads the relay's [lint]
section (disabled, shorteners, max_bytes), to which --disable and
--shorteners add. Exit status: 0 when no finding is of severity block, 1
when one is, 2 on a usage or read error.`

// lintFlags are the options of sluice lint, kept apart from the parsing
// so that more sources of options (a config file's [lint]) can fill them.
type lintFlags struct {
	config     string
	json       bool
	bulk       bool
	disable    string
	shorteners string
}

func runLint(stdin io.Reader, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("lint", lintUsage, stderr)
	var f lintFlags
	fs.BoolVar(&f.json, "json", false, "print JSON")
	fs.StringVar(&f.config, "config", "", "the relay's config file: its [lint] disabled, shorteners and max_bytes apply")
	fs.BoolVar(&f.bulk, "bulk", false, "judge the message as bulk mail (lint.bulk_per_day exceeded): it needs RFC 8058 one-click unsubscribe")
	fs.StringVar(&f.disable, "disable", "", "comma-separated finding IDs to switch off")
	fs.StringVar(&f.shorteners, "shorteners", "", "comma-separated extra link-shortener domains")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseErr(err)
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("%w: give one message file, or - for standard input", errUsage)
	}
	opts, err := f.options()
	if err != nil {
		return err
	}
	name := pos[0]
	in := stdin
	if name != "-" {
		file, err := os.Open(name)
		if err != nil {
			return ioError{err}
		}
		defer file.Close()
		in = file
	}
	findings, err := lint.Check(in, opts)
	if err != nil {
		return ioError{err}
	}
	if findings == nil {
		findings = []lint.Finding{}
	}
	if f.json {
		if err := printJSON(stdout, struct {
			File     string         `json:"file"`
			Findings []lint.Finding `json:"findings"`
		}{name, findings}); err != nil {
			return err
		}
	} else {
		renderFindings(stdout, findings)
	}
	if n := countBlock(findings); n > 0 {
		return fmt.Errorf("%d finding(s) of severity block", n)
	}
	return nil
}

func (f lintFlags) options() (lint.Options, error) {
	o := lint.Options{Bulk: f.bulk}
	disable, shorteners := splitList(f.disable), splitList(f.shorteners)
	if f.config != "" {
		// Validated by the config layer: its IDs are known.
		l, err := config.LoadForLint(f.config)
		if err != nil {
			return o, configError{err}
		}
		disable = append(slices.Clone(l.Disabled), disable...)
		shorteners = append(slices.Clone(l.Shorteners), shorteners...)
		o.MaxBytes = int64(l.MaxBytes)
	}
	known := lint.IDs()
	for _, id := range disable {
		if !slices.Contains(known, id) {
			return o, fmt.Errorf("%w: --disable: unknown finding %q (known: %s)", errUsage, id, strings.Join(known, ", "))
		}
		if o.Disabled == nil {
			o.Disabled = map[string]bool{}
		}
		o.Disabled[id] = true
	}
	o.Shorteners = shorteners
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// renderFindings prints one line per finding: severity, ID, evidence (the
// message's own text, escaped: it may carry terminal control sequences),
// then the fix.
func renderFindings(w io.Writer, findings []lint.Finding) {
	if len(findings) == 0 {
		fmt.Fprintln(w, "no findings")
		return
	}
	for _, f := range findings {
		fmt.Fprintf(w, "%-5s  %s  %s  fix: %s\n", f.Severity, f.ID, esc(f.Evidence), f.Fix)
	}
}

func countBlock(findings []lint.Finding) int {
	n := 0
	for _, f := range findings {
		if f.Severity == lint.Block {
			n++
		}
	}
	return n
}

// ioError is a failure to read the message: exit status 2, like a usage
// error, so that CI tells "the template has a blocking finding" (1) from
// "the check did not run".
type ioError struct{ err error }

func (e ioError) Error() string        { return e.err.Error() }
func (e ioError) Unwrap() error        { return e.err }
func (e ioError) Is(target error) bool { return target == errUsage }

// configError is a --config file that cannot be used: exit status 2 too.
type configError struct{ err error }

func (e configError) Error() string        { return e.err.Error() }
func (e configError) Unwrap() error        { return e.err }
func (e configError) Is(target error) bool { return target == errUsage }
