package sim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/internal/fakemx"
)

// TestSimVsReal validates the simulator against the real-time bench
// (issue 11 item 1): for each scenario of bench/throttle, time/ideal
// must agree within 15 % and refusals per delivery within 15 % or 0.01
// absolute, sim against the median of the real runs. It needs runs kept
// by the bench (KEEP=1 keeps each run's work directory):
//
//	KEEP=1 NO_POSTFIX=1 bench/throttle/run.sh            # three times
//	KEEP=1 NO_POSTFIX=1 N=300 SCENARIOS=lowrate bench/throttle/run.sh
//	SLUICE_SIM_REAL='/tmp/sluice-throttle.*' go test ./internal/sim -run SimVsReal -v
//
// SLUICE_SIM_REAL is a glob of work directories; each holds
// SCENARIO/sluice/{stats.json,times,inject.out}. Each sim side is the
// median of five seeds, with the real runs' median injection span and
// the fake MX's lead on the relay.
func TestSimVsReal(t *testing.T) {
	pattern := os.Getenv("SLUICE_SIM_REAL")
	if pattern == "" {
		t.Skip("SLUICE_SIM_REAL names no bench runs (see the comment)")
	}
	dirs, err := filepath.Glob(pattern)
	if err != nil || len(dirs) == 0 {
		t.Fatalf("SLUICE_SIM_REAL=%q matches nothing", pattern)
	}
	real := map[string][]realRun{}
	for _, d := range dirs {
		for _, sc := range benchScenarios() {
			r, err := loadRealRun(filepath.Join(d, sc.Name, "sluice"))
			if os.IsNotExist(err) {
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			real[sc.Name] = append(real[sc.Name], r)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-16s %4s | %-34s %-24s %5s | %-44s %-28s %5s | %s\n", "scenario", "runs",
		"time/ideal sim", "real median (runs)", "agree", "refusals/dlv sim", "real median", "agree", "greylist/rcpt sim | real")
	for _, sc := range benchScenarios() {
		runs := real[sc.Name]
		if len(runs) == 0 {
			continue
		}
		sc.N = runs[0].n
		sc.Arrive = median(runs, func(r realRun) float64 { return r.inject.Seconds() }).duration()
		sc.Lead = median(runs, func(r realRun) float64 { return r.lead.Seconds() }).duration()
		var sims []Result
		for seed := range uint64(5) {
			sc.Seed = seed + 1
			sims = append(sims, Run(t, sc))
		}
		ideal := sims[0].Ideal
		simRatio := medianOf(sims, Result.TimeRatio)
		simRef := medianOf(sims, Result.RefusalsPerDelivery)
		simGrey := medianOf(sims, Result.GreylistPerRcpt)
		realRatio := median(runs, func(r realRun) float64 { return r.time.Seconds() / ideal.Seconds() })
		realRef := median(runs, realRun.refusalsPerDelivery)
		realGrey := median(runs, realRun.greylistPerRcpt)
		okTime := math.Abs(simRatio-float64(realRatio)) <= 0.15*float64(realRatio)
		okRef := math.Abs(simRef-float64(realRef)) <= max(0.15*float64(realRef), 0.01)
		fmt.Fprintf(&b, "%-16s %4d | %-34s %-24s %5s | %-44s %-28s %5s | %.2f | %.2f\n", sc.Name, len(runs),
			fmt.Sprintf("%.2f (%s)", simRatio, seriesOf(sims, Result.TimeRatio, "%.2f")),
			fmt.Sprintf("%.2f (%s)", float64(realRatio), seriesOfReal(runs, func(r realRun) float64 { return r.time.Seconds() / ideal.Seconds() }, "%.2f")),
			yes(okTime),
			fmt.Sprintf("%.3f (%s)", simRef, seriesOf(sims, Result.RefusalsPerDelivery, "%.3f")),
			fmt.Sprintf("%.3f (%s)", float64(realRef), seriesOfReal(runs, realRun.refusalsPerDelivery, "%.3f")),
			yes(okRef), simGrey, float64(realGrey))
		if !okTime {
			t.Errorf("%s: time/ideal sim %.2f, real %.2f: more than 15 %% apart", sc.Name, simRatio, float64(realRatio))
		}
		if !okRef {
			t.Errorf("%s: refusals/delivery sim %.3f, real %.3f: more than 15 %% and 0.01 apart", sc.Name, simRef, float64(realRef))
		}
	}
	t.Logf("simulator vs bench/throttle (sim: median of 5 seeds; real: median of the runs)\n%s", b.String())
}

// realRun is one side of one bench scenario, as the fake MX saw it.
type realRun struct {
	n          int
	stats      fakemx.Stats
	time       time.Duration // injection start to the last delivery
	inject     time.Duration // the injector's elapsed time
	lead       time.Duration // the fake MX's start to the injection start
	delivered  int
	recipients int
}

func (r realRun) refusalsPerDelivery() float64 {
	st := r.stats
	return ratio(float64(st.SessionRefusals+st.RateRefusals+st.OutageRefusals+st.PenaltyRefusals+st.MailboxRefusals), float64(r.delivered))
}

func (r realRun) greylistPerRcpt() float64 {
	return ratio(float64(r.stats.GreylistReplies), float64(r.recipients))
}

func loadRealRun(dir string) (realRun, error) {
	b, err := os.ReadFile(filepath.Join(dir, "stats.json"))
	if err != nil {
		return realRun{}, err
	}
	var doc struct {
		Stats fakemx.Stats `json:"stats"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return realRun{}, err
	}
	times := map[string]time.Time{}
	f, err := os.Open(filepath.Join(dir, "times"))
	if err != nil {
		return realRun{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return realRun{}, fmt.Errorf("times: %q", sc.Text())
		}
		whole, frac := math.Modf(secs)
		times[k] = time.Unix(int64(whole), int64(frac*1e9))
	}
	out, err := os.ReadFile(filepath.Join(dir, "inject.out"))
	if err != nil {
		return realRun{}, err
	}
	m := regexp.MustCompile(`sent=(\d+) .*elapsed=(\S+)`).FindSubmatch(out)
	if m == nil {
		return realRun{}, fmt.Errorf("inject.out: %q", out)
	}
	r := realRun{stats: doc.Stats, recipients: len(doc.Stats.Recipients)}
	r.n, _ = strconv.Atoi(string(m[1]))
	r.inject, _ = time.ParseDuration(string(m[2]))
	r.lead = times["inject_start"].Sub(times["mx_start"])
	var last time.Time
	for _, rc := range doc.Stats.Recipients {
		if rc.Deliveries > 0 {
			r.delivered++
			if rc.Delivered.After(last) {
				last = rc.Delivered
			}
		}
	}
	if r.delivered < r.n {
		last = times["end"]
	}
	r.time = last.Sub(times["inject_start"])
	return r, nil
}

type seconds float64

func (s seconds) duration() time.Duration { return time.Duration(float64(s) * float64(time.Second)) }

// median is the median of f over runs (the lower middle of an even count).
func median(runs []realRun, f func(realRun) float64) seconds {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return seconds(v[(len(v)-1)/2])
}

func medianOf(rs []Result, f func(Result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[(len(v)-1)/2]
}

func seriesOf(rs []Result, f func(Result) float64, format string) string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf(format, f(r)))
	}
	return strings.Join(s, " ")
}

func seriesOfReal(rs []realRun, f func(realRun) float64, format string) string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf(format, f(r)))
	}
	return strings.Join(s, " ")
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}
