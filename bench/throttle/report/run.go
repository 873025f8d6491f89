package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sluice/internal/fakemx"
)

// run is one side of a scenario: what the fake MX saw, and when.
type run struct {
	Stats       fakemx.Stats
	MXStart     time.Time // the fake MX printed its address
	InjectStart time.Time // the injector started
	End         time.Time // the script stopped waiting (all delivered or the cap)
	// Attempts are the relay's own record of its tries, per recipient
	// (attempts.go); nil when its log is not there.
	Attempts map[string][]attempt
}

func loadRun(dir string) (*run, error) {
	b, err := os.ReadFile(filepath.Join(dir, "stats.json"))
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	var doc struct {
		Stats fakemx.Stats `json:"stats"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s/stats.json: %w", dir, err)
	}
	f, err := os.Open(filepath.Join(dir, "times"))
	if err != nil {
		return nil, fmt.Errorf("times: %w", err)
	}
	defer f.Close()
	times, err := parseTimes(f)
	if err != nil {
		return nil, fmt.Errorf("%s/times: %w", dir, err)
	}
	r := &run{Stats: doc.Stats, MXStart: times["mx_start"], InjectStart: times["inject_start"], End: times["end"]}
	if r.Attempts, err = loadAttempts(dir, r.MXStart.Year()); err != nil {
		return nil, fmt.Errorf("%s: relay log: %w", dir, err)
	}
	return r, nil
}

// parseTimes reads "key=unix-seconds" lines, e.g. "end=1764072000.123456789".
func parseTimes(r interface{ Read([]byte) (int, error) }) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %q: want key=seconds", line)
		}
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(secs) || math.IsInf(secs, 0) || secs < 0 || secs > 1e11 {
			return nil, fmt.Errorf("line %q: bad seconds", line)
		}
		whole, frac := math.Modf(secs)
		out[k] = time.Unix(int64(whole), int64(frac*1e9))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	for _, k := range []string{"mx_start", "inject_start", "end"} {
		if _, ok := out[k]; !ok {
			return nil, fmt.Errorf("missing %s", k)
		}
	}
	return out, nil
}

// delivered counts distinct recipients delivered at least once: each
// message of the bench has its own recipient, so this is unique messages.
func (r *run) delivered() int {
	n := 0
	for _, rc := range r.Stats.Recipients {
		if rc.Deliveries > 0 {
			n++
		}
	}
	return n
}

// lastDelivery is the first delivery of the last recipient to arrive.
func (r *run) lastDelivery() time.Time {
	var last time.Time
	for _, rc := range r.Stats.Recipients {
		if rc.Deliveries > 0 && rc.Delivered.After(last) {
			last = rc.Delivered
		}
	}
	return last
}

// lags returns, sorted, the time each delivered recipient waited beyond
// the greylisting window g after its first attempt.
func (r *run) lags(g time.Duration) []time.Duration {
	var out []time.Duration
	for _, rc := range r.Stats.Recipients {
		if rc.Deliveries == 0 {
			continue
		}
		out = append(out, max(0, rc.Delivered.Sub(rc.FirstAttempt)-g))
	}
	sortDurations(out)
	return out
}

// waits returns, sorted, the time from each delivered recipient's first
// attempt to its delivery.
func (r *run) waits() []time.Duration {
	var out []time.Duration
	for _, rc := range r.Stats.Recipients {
		if rc.Deliveries > 0 {
			out = append(out, rc.Delivered.Sub(rc.FirstAttempt))
		}
	}
	sortDurations(out)
	return out
}

// greylistPerRcpt is greylist replies per recipient seen.
func (r *run) greylistPerRcpt() float64 {
	if len(r.Stats.Recipients) == 0 {
		return 0
	}
	total := 0
	for _, rc := range r.Stats.Recipients {
		total += rc.GreylistReplies
	}
	return float64(total) / float64(len(r.Stats.Recipients))
}

// buckets counts first deliveries per bucket since the fake MX start.
func (r *run) buckets(bucket time.Duration, n int) []int {
	out := make([]int, n)
	for _, rc := range r.Stats.Recipients {
		if rc.Deliveries == 0 {
			continue
		}
		i := int(rc.Delivered.Sub(r.MXStart) / bucket)
		if i >= 0 && i < n {
			out[i]++
		}
	}
	return out
}
