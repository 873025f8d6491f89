// Command report reads what the fake MX saw in one throttle-bench scenario
// (the -stats JSON of cmd/fakemx, for sluice and for Postfix) and prints a
// side-by-side table: sluice | postfix | target. It is run by
// bench/throttle/run.sh; it only reads files and never touches the network.
//
// Each side is a directory holding stats.json and a "times" file of
// key=value lines (mx_start, inject_start, end: unix seconds with fraction)
// written by the script, because the fake MX stats carry absolute times
// and the scenario's windows are relative to the fake MX start.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"sluice/internal/fakemx"
)

func main() {
	var sc scenario
	var sluiceDir, postfixDir string
	flag.StringVar(&sc.Name, "scenario", "throttle", "throttle | lowrate | greylist-hinted | greylist-plain | greylist-<G> (unhinted, e.g. greylist-30s) | outage | shifting | drop")
	flag.IntVar(&sc.N, "n", 2000, "messages sent")
	flag.IntVar(&sc.Sessions, "sessions", 0, "K of the fake MX at start")
	flag.IntVar(&sc.Rate, "rate", 0, "R of the fake MX at start, per -window")
	flag.DurationVar(&sc.Window, "window", time.Second, "rate window of the fake MX")
	flag.DurationVar(&sc.Greylist, "greylist", 0, "greylisting window G")
	flag.Var(listFlag[fakemx.Window]{fakemx.ParseWindow, &sc.Outages}, "outage", "outage window, as given to fakemx")
	flag.Var(listFlag[fakemx.Limits]{fakemx.ParseLimits, &sc.Schedule}, "schedule", "schedule entry, as given to fakemx")
	flag.DurationVar(&sc.Bucket, "bucket", 5*time.Second, "bucket of the shifting-limits timeline")
	flag.StringVar(&sluiceDir, "sluice", "", "directory of the sluice side (\"\" = not run)")
	flag.StringVar(&postfixDir, "postfix", "", "directory of the Postfix side (\"\" = not run)")
	flag.Parse()

	var sides [2]*run
	for i, dir := range []string{sluiceDir, postfixDir} {
		if dir == "" {
			continue
		}
		r, err := loadRun(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
		sides[i] = r
	}
	t, err := sc.table(sides[0], sides[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	t.write(os.Stdout)
}

// listFlag collects a repeatable flag through a fakemx parser, so that the
// report reads the scenario in exactly the syntax the fake MX was given.
type listFlag[T any] struct {
	parse func(string) (T, error)
	dst   *[]T
}

func (l listFlag[T]) String() string { return "" }

func (l listFlag[T]) Set(s string) error {
	v, err := l.parse(s)
	if err != nil {
		return err
	}
	*l.dst = append(*l.dst, v)
	return nil
}
