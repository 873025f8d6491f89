package sim

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/internal/fakemx"
)

// The randomised sweep (issue 11 item 2): receivers drawn at random, each
// run in virtual time against the real scheduler and policy, summarised
// as p50, p95 and worst of each figure.
//
//	go test ./internal/sim -run Sweep -v                  # the CI subset: 50 receivers
//	SLUICE_SWEEP=1000 go test ./internal/sim -run Sweep -v -timeout 30m
//	SLUICE_SWEEP_SEED=7 ...                               # another draw
//	SLUICE_SWEEP_CONFIG=bench ...                         # the bench's scaled times
//	SLUICE_SWEEP_VERBOSE=1 ...                            # every receiver's figures
//	SLUICE_SWEEP_TRACE=r017,r040 ...                      # only those receivers, look by look
//
// The CI subset runs the relay's defaults (sweepConfig): the law as
// shipped.

// sweepConfigs are the relay configs the sweep can run (SLUICE_SWEEP_CONFIG
// names one): the relay's defaults, the law as shipped, and the
// bench's, with its time constants scaled down (retry_base 1s: a
// throttle pause starts at a second, not a minute).
var sweepConfigs = map[string]string{"defaults": "", "bench": benchConfig}

// sweepConfig is the config of the CI subset.
const sweepConfig = "defaults"

// defaultSweepSeed is the draw of the CI subset; SLUICE_SWEEP_SEED sets
// another.
const defaultSweepSeed = 11

// targets is the sweep's one table of thresholds. Goal is the issue's
// target; Assert is what the test fails beyond: the current control
// law's figure with a margin for the run-to-run noise (goroutines woken
// at one virtual instant run in any order), to be tightened towards Goal
// as the law improves. A figure is asserted only on the CI subset's seed
// and size, where Assert was measured.
var targets = []target{
	{Name: "time/ideal p95", Goal: 1.3, Assert: 3.5},
	{Name: "refusals/delivery p95", Goal: 0.05, Assert: 0.08},
	{Name: "greylist replies/rcpt p95", Goal: 1.15, Assert: 1.15},
	{Name: "starvation episodes", Goal: 0, Assert: 0},
	// Item 3 of the issue: back to 80 % of a raised capacity within 5 s,
	// and probing never trips a penalty box.
	{Name: "s to 80% after a rise p95", Goal: 5, Assert: 600},
	{Name: "penalty boxes shut", Goal: 0, Assert: 2},
}

type target struct {
	Name         string
	Goal, Assert float64
}

// receiver is one drawn receiver: a scenario and what it was drawn as.
type receiver struct {
	Scenario
	desc string
	k, r int
	grey bool
}

// drawReceiver draws receiver i: K in 1-20, R log-uniform in 1-500 per
// second, mail for 30 s to 4 min of its capacity (20 to 2,000 messages,
// 500 at most under greylisting),
// and, each independently, greylisting (0-300 s, with a hint or not),
// an outage (10 s to 2 min), a penalty box (3-20 refusals within 10-60 s
// shut it for 1-10 min, each attempt inside keeping it shut 0-60 s
// longer), and a shift of capacity 2-10x down and back up after 15 s to
// 2 min.
func drawReceiver(rng *rand.Rand, i int) receiver {
	k := 1 + rng.IntN(20)
	r := int(math.Round(math.Exp(rng.Float64() * math.Log(500))))
	span := time.Duration(30+rng.IntN(211)) * time.Second
	n := min(max(int(float64(r)*span.Seconds()), 20), 2000)
	o := fakemx.Options{MaxSessions: k, RatePerWindow: r}
	desc := []string{fmt.Sprintf("K=%d R=%d/s N=%d", k, r, n)}
	rc := receiver{k: k, r: r}
	if rng.Float64() < 0.3 {
		o.Greylist = time.Duration(rng.IntN(301)) * time.Second
		hint := rng.IntN(2) == 0
		if hint {
			o.GreylistText = "451 4.7.1 Greylisted, try again in %d seconds"
		}
		rc.grey = o.Greylist > 0
		// Every recipient is tried twice or more: fewer of them keep
		// the sweep quick, and 500 show the window's learning as well.
		n = min(n, 500)
		desc[0] = fmt.Sprintf("K=%d R=%d/s N=%d", k, r, n)
		desc = append(desc, fmt.Sprintf("greylist %v%s", o.Greylist, map[bool]string{true: " hinted", false: ""}[hint]))
	}
	// The mail's own span, for placing events inside it.
	est := time.Duration(float64(n) / float64(r) * float64(time.Second))
	if rng.Float64() < 0.2 {
		start := time.Duration(rng.Float64() * float64(est) / 2)
		w := fakemx.Window{Start: start, End: start + time.Duration(10+rng.IntN(111))*time.Second}
		o.Outages = []fakemx.Window{w}
		desc = append(desc, fmt.Sprintf("outage %v-%v", w.Start.Round(time.Second), w.End.Round(time.Second)))
	}
	if rng.Float64() < 0.3 {
		block := time.Duration(60+rng.IntN(541)) * time.Second
		o.Penalty = fakemx.PenaltyBox{Refusals: 3 + rng.IntN(18), Within: time.Duration(10+rng.IntN(51)) * time.Second,
			Block: block, Extend: time.Duration(rng.IntN(61)) * time.Second}
		desc = append(desc, fmt.Sprintf("penalty %d in %v: %v +%v", o.Penalty.Refusals, o.Penalty.Within, block, o.Penalty.Extend))
	}
	if rng.Float64() < 0.3 {
		f := 2 + 8*rng.Float64()
		at := time.Duration((0.1 + 0.4*rng.Float64()) * float64(est))
		back := at + time.Duration(15+rng.IntN(106))*time.Second
		o.Schedule = []fakemx.Limits{
			{At: at, MaxSessions: max(1, int(float64(k)/f)), RatePerWindow: max(1, int(float64(r)/f))},
			{At: back, MaxSessions: k, RatePerWindow: r},
		}
		desc = append(desc, fmt.Sprintf("shift /%.1f %v-%v", f, at.Round(time.Second), back.Round(time.Second)))
	}
	rc.Scenario = Scenario{Name: fmt.Sprintf("r%03d", i), N: n, Receiver: o, Seed: uint64(i) + 1}
	rc.desc = strings.Join(desc, ", ")
	return rc
}

func TestSweep(t *testing.T) {
	count, seed, cfg := 50, uint64(defaultSweepSeed), sweepConfig
	if v := os.Getenv("SLUICE_SWEEP_CONFIG"); v != "" {
		if _, ok := sweepConfigs[v]; !ok {
			t.Fatalf("SLUICE_SWEEP_CONFIG=%q: want defaults or bench", v)
		}
		cfg = v
	}
	if v := os.Getenv("SLUICE_SWEEP"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("SLUICE_SWEEP=%q: want a number of receivers", v)
		}
		count = n
	}
	if v := os.Getenv("SLUICE_SWEEP_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SLUICE_SWEEP_SEED=%q: want a number", v)
		}
		seed = n
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	rcs := make([]receiver, count)
	for i := range rcs {
		rcs[i] = drawReceiver(rng, i)
		rcs[i].Config = sweepConfigs[cfg]
	}
	if v := os.Getenv("SLUICE_SWEEP_TRACE"); v != "" {
		// Only the receivers named, look by look.
		var only []receiver
		for _, rc := range rcs {
			if slices.Contains(strings.Split(v, ","), rc.Name) {
				rc.Trace = true
				only = append(only, rc)
			}
		}
		rcs, count = only, len(only)
	}
	res := make([]Result, len(rcs))
	wall := time.Now()
	t.Run("receivers", func(t *testing.T) {
		for i := range rcs {
			t.Run(rcs[i].Name, func(t *testing.T) {
				t.Parallel()
				res[i] = Run(t, rcs[i].Scenario)
				if os.Getenv("SLUICE_SWEEP_VERBOSE") != "" || rcs[i].Trace {
					t.Logf("%v wall %v: %s; limited by: %s", res[i], res[i].Wall, rcs[i].desc, limitedBy(rcs[i], res[i]))
				}
				for _, smp := range res[i].Trace {
					t.Log(smp)
				}
			})
		}
	})
	if t.Failed() {
		return
	}
	sum := summarise(rcs, res)
	t.Logf("sweep: %d receivers, seed %d (SLUICE_SWEEP_SEED), config %s (SLUICE_SWEEP_CONFIG), %v\n%s",
		count, seed, cfg, time.Since(wall).Round(time.Millisecond), sum.table())
	if count != 50 || seed != defaultSweepSeed || cfg != sweepConfig {
		return
	}
	for _, tg := range targets {
		if got := sum.figure(tg.Name); got > tg.Assert {
			t.Errorf("%s = %.3f, above %.3f (the issue's target is %.3f)", tg.Name, got, tg.Assert, tg.Goal)
		}
	}
}

// sweepSummary is the sweep's figures.
type sweepSummary struct {
	rcs             []receiver
	res             []Result
	ratio, refusals []float64 // per receiver
	greylist        []float64 // per greylisting receiver
	recovery        []float64 // seconds, per receiver whose capacity rose with mail waiting
	boxes, boxed    int       // receivers with a penalty box; of them, those whose box shut
	starved         int
	longest         time.Duration
	undone          int
}

func summarise(rcs []receiver, res []Result) sweepSummary {
	s := sweepSummary{rcs: rcs, res: res}
	for i, r := range res {
		s.ratio = append(s.ratio, r.TimeRatio())
		s.refusals = append(s.refusals, r.RefusalsPerDelivery())
		if rcs[i].grey {
			s.greylist = append(s.greylist, r.GreylistPerRcpt())
		}
		if r.Recovery >= 0 {
			s.recovery = append(s.recovery, r.Recovery.Seconds())
		}
		if rcs[i].Receiver.Penalty.Refusals > 0 {
			s.boxes++
			if r.Stats.PenaltyBlocks > 0 {
				s.boxed++
			}
		}
		s.starved += r.Starved
		s.longest = max(s.longest, r.MaxStarve)
		if !r.Done {
			s.undone++
		}
	}
	return s
}

// figure is a summary figure by its name in targets.
func (s sweepSummary) figure(name string) float64 {
	switch name {
	case "time/ideal p95":
		return quantile(s.ratio, 0.95)
	case "refusals/delivery p95":
		return quantile(s.refusals, 0.95)
	case "greylist replies/rcpt p95":
		return quantile(s.greylist, 0.95)
	case "starvation episodes":
		return float64(s.starved)
	case "s to 80% after a rise p95":
		return quantile(s.recovery, 0.95)
	case "penalty boxes shut":
		return float64(s.boxed)
	}
	panic("sim: no figure " + name)
}

// quantile is the nearest-rank quantile q of v (0 for none).
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func (s sweepSummary) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-28s %8s %8s %8s %8s\n", "", "p50", "p95", "worst", "target")
	row := func(name string, v []float64, goal string) {
		fmt.Fprintf(&b, "%-28s %8.3f %8.3f %8.3f %8s\n", name, quantile(v, 0.5), quantile(v, 0.95), quantile(v, 1), goal)
	}
	row("time/ideal", s.ratio, "<= 1.3")
	row("refusals/delivery", s.refusals, "<= 0.05")
	row(fmt.Sprintf("greylist replies/rcpt (%d)", len(s.greylist)), s.greylist, "<= 1.15")
	row(fmt.Sprintf("s to 80%% after a rise (%d)", len(s.recovery)), s.recovery, "<= 5")
	fmt.Fprintf(&b, "%-28s %8d %8s %8d %8s\n", "penalty boxes shut", s.boxed, "of", s.boxes, "0")
	fmt.Fprintf(&b, "%-28s %8d %8s %8.1fs %7s\n", "starvation episodes", s.starved, "longest", s.longest.Seconds(), "0")
	if s.undone > 0 {
		fmt.Fprintf(&b, "not all delivered by the cap: %d receivers\n", s.undone)
	}
	worst := func(title string, key func(Result) float64) {
		idx := make([]int, len(s.res))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, c int) int { return cmp.Compare(key(s.res[c]), key(s.res[a])) })
		fmt.Fprintf(&b, "worst by %s:\n", title)
		for _, i := range idx[:min(5, len(idx))] {
			r := s.res[i]
			fmt.Fprintf(&b, "  %s x%.2f %.3f ref/dlv %.2f grey/rcpt  [%s]  limited by: %s\n",
				r.Scenario, r.TimeRatio(), r.RefusalsPerDelivery(), r.GreylistPerRcpt(), s.rcs[i].desc, limitedBy(s.rcs[i], r))
		}
	}
	worst("time/ideal", Result.TimeRatio)
	worst("refusals/delivery", Result.RefusalsPerDelivery)
	return b.String()
}

// limitedBy says what held a run back, from policy's state over the run
// and the receiver's replies.
func limitedBy(rc receiver, r Result) string {
	var why []string
	if !r.Done {
		why = append(why, "not all delivered by the cap")
	}
	if r.Paused >= 0.1 {
		why = append(why, fmt.Sprintf("paused %.0f%% of the run", 100*r.Paused))
	}
	if r.Capped >= 0.5 && r.MeanRate < 0.8*float64(rc.r) {
		why = append(why, fmt.Sprintf("rate cap %.1f/s on average, receiver %d/s", r.MeanRate, rc.r))
	}
	if r.MeanConc < 0.8*float64(rc.k) {
		why = append(why, fmt.Sprintf("concurrency %.1f on average, receiver K=%d", r.MeanConc, rc.k))
	}
	if st := r.Stats; st.PenaltyBlocks > 0 {
		why = append(why, fmt.Sprintf("penalty box shut %d times (%d refused in it)", st.PenaltyBlocks, st.PenaltyRefusals))
	}
	if st := r.Stats; st.SessionRefusals+st.RateRefusals > 0 {
		why = append(why, fmt.Sprintf("%d session and %d rate refusals", st.SessionRefusals, st.RateRefusals))
	}
	if g := r.GreylistPerRcpt(); g > 1.15 {
		why = append(why, fmt.Sprintf("%.2f greylist replies/rcpt", g))
	}
	if len(why) == 0 {
		return "nothing in particular (latency and slow start)"
	}
	return strings.Join(why, "; ")
}
