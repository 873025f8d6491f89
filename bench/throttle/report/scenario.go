package main

import (
	"fmt"
	"strings"
	"time"

	"sluice/internal/fakemx"
)

// scenario is what the fake MX was told to do, in its own terms.
type scenario struct {
	Name     string
	N        int
	Sessions int
	Rate     int
	Window   time.Duration
	Greylist time.Duration
	Outages  []fakemx.Window
	Schedule []fakemx.Limits
	Bucket   time.Duration
}

// table builds the side-by-side table; a nil side prints "-".
func (sc scenario) table(s, p *run) (*table, error) {
	t := &table{cols: []string{"", "sluice", "postfix", "target"}}
	both := func(label string, f func(*run) string, target string) {
		t.add(label, cell(s, f), cell(p, f), target)
	}
	both("delivered", func(r *run) string { return fmt.Sprintf("%d/%d", r.delivered(), sc.N) }, fmt.Sprint(sc.N))
	switch sc.Name {
	case "throttle", "lowrate":
		ideal := time.Duration(float64(sc.N) / float64(sc.Rate) * float64(sc.Window))
		both("time to deliver all (s)", sc.timeAll, "ideal "+secs(ideal))
		both("421 per delivered", per421, "-> 0")
		both("duplicates", func(r *run) string { return fmt.Sprint(r.Stats.Duplicates) }, "0")
	case "greylist-hinted", "greylist-plain":
		for _, q := range []struct {
			label string
			q     float64
		}{{"lag median (s)", 0.5}, {"lag p95 (s)", 0.95}, {"lag max (s)", 1}} {
			both(q.label, func(r *run) string { return secs(quantile(r.lags(sc.Greylist), q.q)) }, "~ margin")
		}
		target := "1"
		if sc.Name == "greylist-plain" {
			target = "<= 2"
		}
		both("greylist replies/rcpt", func(r *run) string { return fmt.Sprintf("%.2f", r.greylistPerRcpt()) }, target)
		both("time to deliver all (s)", sc.timeAll, "")
	case "outage":
		if len(sc.Outages) == 0 {
			return nil, fmt.Errorf("outage scenario without -outage")
		}
		end := sc.Outages[len(sc.Outages)-1].End
		both("421 at greeting in outage", func(r *run) string { return fmt.Sprint(r.Stats.OutageRefusals) }, "few (backoff)")
		both("last delivery after end (s)", func(r *run) string {
			if r.delivered() < sc.N {
				return "not all"
			}
			return secs(r.lastDelivery().Sub(r.MXStart.Add(end)))
		}, "small")
		both("421 total", func(r *run) string { return fmt.Sprint(r.Stats.Refused421) }, "")
		both("duplicates", func(r *run) string { return fmt.Sprint(r.Stats.Duplicates) }, "0")
	case "shifting", "drop":
		return sc.shifting(t, s, p), nil
	default:
		if sc.unhintedGreylist() {
			return sc.greylistWindow(t, s, p), nil
		}
		return nil, fmt.Errorf("unknown scenario %q", sc.Name)
	}
	return t, nil
}

// shifting prints deliveries per bucket against the receiver's capacity,
// so that following a limit down and back up shows as two matching columns.
func (sc scenario) shifting(t *table, s, p *run) *table {
	both := func(label string, f func(*run) string, target string) {
		t.add(label, cell(s, f), cell(p, f), target)
	}
	timeTarget, perTarget := "", "-> 0"
	if sc.Name == "drop" {
		ideal := sc.idealTime()
		timeTarget, perTarget = fmt.Sprintf("<= %s (1.3 × ideal %s)", secs(ideal*13/10), secs(ideal)), "<= 0.05"
	}
	both("time to deliver all (s)", sc.timeAll, timeTarget)
	both("421 session refusals", func(r *run) string { return fmt.Sprint(r.Stats.SessionRefusals) }, "-> 0")
	both("421 rate refusals", func(r *run) string { return fmt.Sprint(r.Stats.RateRefusals) }, "-> 0")
	both("421 per delivered", per421, perTarget)
	untriedTarget := ""
	if sc.Name == "drop" {
		untriedTarget = "<= retry_max (10.0)"
	}
	both("deferrals (relay log)", func(r *run) string {
		if r.Attempts == nil {
			return "-"
		}
		_, n := maxUntried(r.Attempts, r.End)
		return fmt.Sprint(n)
	}, "")
	both("max untried after deferral (s)", func(r *run) string {
		if r.Attempts == nil {
			return "-"
		}
		d, _ := maxUntried(r.Attempts, r.End)
		return secs(d)
	}, untriedTarget)
	both("duplicates", func(r *run) string { return fmt.Sprint(r.Stats.Duplicates) }, "0")
	n := 0
	for _, r := range []*run{s, p} {
		if r != nil {
			n = max(n, int(r.End.Sub(r.MXStart)/sc.Bucket)+1)
		}
	}
	var sb, pb []int
	if s != nil {
		sb = s.buckets(sc.Bucket, n)
	}
	if p != nil {
		pb = p.buckets(sc.Bucket, n)
	}
	t.add("delivered per bucket", "", "", "capacity")
	// A run of buckets where neither side delivered is one row, so that a
	// straggler at the cap does not print a page of zeros.
	idle := -1
	for i := range n {
		quiet := bucketAt(sb, i) == 0 && bucketAt(pb, i) == 0
		if quiet && i < n-1 {
			if idle < 0 {
				idle = i
			}
			continue
		}
		if idle >= 0 {
			sc.bucketRow(t, idle, i, sb, pb)
			idle = -1
		}
		sc.bucketRow(t, i, i+1, sb, pb)
		if (sb == nil || sum(sb[i+1:]) == 0) && (pb == nil || sum(pb[i+1:]) == 0) {
			break
		}
	}
	return t
}

// unhintedGreylist reports a greylist-<window> scenario: greylisting
// whose replies name no delay, the window G given by the name.
func (sc scenario) unhintedGreylist() bool {
	w, ok := strings.CutPrefix(sc.Name, "greylist-")
	if !ok {
		return false
	}
	_, err := time.ParseDuration(w)
	return err == nil
}

// greylistWindow is the table of an unhinted greylisting scenario: how
// many greylist replies each recipient got (one is the least: its first
// attempt), and how long after its first attempt it was delivered.
func (sc scenario) greylistWindow(t *table, s, p *run) *table {
	both := func(label string, f func(*run) string, target string) {
		t.add(label, cell(s, f), cell(p, f), target)
	}
	both("greylist replies/rcpt", func(r *run) string { return fmt.Sprintf("%.2f", r.greylistPerRcpt()) }, "<= 1.1")
	for _, q := range []struct {
		label string
		q     float64
	}{{"first attempt to delivery, median (s)", 0.5}, {"first attempt to delivery, max (s)", 1}} {
		both(q.label, func(r *run) string { return secs(quantile(r.waits(), q.q)) }, "<= "+secs(sc.Greylist*3/2)+" (1.5 G)")
	}
	both("time to deliver all (s)", sc.timeAll, "")
	return t
}

// idealTime is when a sender that kept the fake MX's rate window full
// from its start would have delivered all N, under the schedule.
func (sc scenario) idealTime() time.Duration {
	done := 0
	for w := time.Duration(0); w < 24*time.Hour; w += sc.Window {
		r := sc.limitsAt(w).RatePerWindow
		if r <= 0 {
			return 0
		}
		if done+r >= sc.N {
			return w + time.Duration(float64(sc.Window)*float64(sc.N-done)/float64(r))
		}
		done += r
	}
	return 0
}

// bucketRow adds the row of buckets [i, j).
func (sc scenario) bucketRow(t *table, i, j int, sb, pb []int) {
	from, to := time.Duration(i)*sc.Bucket, time.Duration(j)*sc.Bucket
	label := fmt.Sprintf("  %.0f-%.0fs", from.Seconds(), to.Seconds())
	cnt := func(b []int) string {
		if b == nil {
			return "-"
		}
		return fmt.Sprint(sum(b[i:j]))
	}
	t.add(label, cnt(sb), cnt(pb), sc.capacity(from, to-from))
}

func bucketAt(b []int, i int) int {
	if b == nil {
		return 0
	}
	return b[i]
}

// capacity is how many messages the fake MX would accept in [from,
// from+d): its rate per window, window by window, under the schedule.
func (sc scenario) capacity(from, d time.Duration) string {
	total := 0
	for w := from; w < from+d; w += sc.Window {
		r := sc.limitsAt(w).RatePerWindow
		if r == 0 {
			return "unlimited"
		}
		total += r
	}
	return fmt.Sprintf("%d (K=%d)", total, sc.limitsAt(from).MaxSessions)
}

func (sc scenario) limitsAt(t time.Duration) fakemx.Limits {
	l := fakemx.Limits{MaxSessions: sc.Sessions, RatePerWindow: sc.Rate}
	for _, s := range sc.Schedule {
		if s.At <= t {
			l = s
		}
	}
	return l
}

// timeAll is the time from the start of injection to the last first
// delivery, or "n after cap" when the side was cut off.
func (sc scenario) timeAll(r *run) string {
	if d := r.delivered(); d < sc.N {
		return fmt.Sprintf("%d after %s", d, secs(r.End.Sub(r.InjectStart)))
	}
	return secs(r.lastDelivery().Sub(r.InjectStart))
}

func per421(r *run) string {
	d := r.delivered()
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(r.Stats.Refused421)/float64(d))
}

func cell(r *run, f func(*run) string) string {
	if r == nil {
		return "-"
	}
	return f(r)
}

func sum(b []int) int {
	n := 0
	for _, v := range b {
		n += v
	}
	return n
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) }
