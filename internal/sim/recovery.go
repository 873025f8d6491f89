package sim

import (
	"math"
	"slices"
	"time"

	"sluice/internal/fakemx"
)

// recovery measures how the relay follows a rise of the receiver's
// capacity (issue 11: at least 80 % of the new capacity within 5 s):
// from the last schedule entry that raised the capacity, the time until
// the deliveries of one second first reach 80 % of what the receiver
// and our own sessions can carry then (R per window, and K sessions of
// one transaction per four round trips and a commit), or until the mail
// left at the rise is all delivered. It is -1 when the capacity never
// rose with mail waiting.
func recovery(sc Scenario, m *fakemx.Model, st fakemx.Stats, start time.Time, lat, commit time.Duration) time.Duration {
	if sc.Mailboxes > 0 {
		return -1
	}
	window := sc.Receiver.Window
	if window <= 0 {
		window = time.Second
	}
	perSession := 1 / (4*lat + commit).Seconds()
	capacity := func(at time.Duration) float64 {
		k, r := m.LimitsAt(at)
		c := math.Inf(1)
		if r > 0 {
			c = float64(r) / window.Seconds()
		}
		if k > 0 {
			c = min(c, float64(k)*perSession)
		}
		return c
	}
	var rise time.Duration = -1
	for _, l := range sc.Receiver.Schedule {
		if l.At > 0 && capacity(l.At) > capacity(l.At-time.Nanosecond) && l.At > rise {
			rise = l.At
		}
	}
	if rise < 0 {
		return -1
	}
	from := start.Add(rise - sc.Lead) // the rise, in the run's time
	var after []time.Time
	for _, rc := range st.Recipients {
		if rc.Deliveries > 0 && !rc.Delivered.Before(from) {
			after = append(after, rc.Delivered)
		}
	}
	if len(after) == 0 {
		return -1
	}
	slices.SortFunc(after, func(a, b time.Time) int { return a.Compare(b) })
	want := 0.8 * capacity(rise)
	// The earliest second [t-1s, t] after the rise holding enough.
	j := 0
	for i, t := range after {
		for after[j].Before(t.Add(-time.Second)) {
			j++
		}
		if float64(i-j+1) >= want {
			return max(t.Sub(from), 0)
		}
	}
	return after[len(after)-1].Sub(from)
}
