package timeline

import (
	"math"
	"sort"
	"strings"
	"time"
)

// Chart is the last hour of the destinations charted, for the dashboard
// JSON. It carries destination names and numbers only, never an
// address: it is served on the unauthenticated HTTP listener.
type Chart struct {
	StepSeconds int   `json:"step_seconds"`
	Start       int64 `json:"start"` // unix seconds (UTC) of the first, oldest, step
	Points      int   `json:"points"`
	// Now is when the chart was read: the newest step has run for
	// Now - its start only, which a rate drawn from its counts must
	// divide by instead of StepSeconds.
	Now time.Time `json:"now"`
	// Tracked is how many destinations have rings now, of at most
	// MaxTracked; Destinations holds the busiest of them and the one
	// asked for.
	Tracked      int      `json:"tracked"`
	MaxTracked   int      `json:"max_tracked"`
	Destinations []Series `json:"destinations"`
}

// Series is one destination's hour, one value per step, oldest first.
type Series struct {
	Destination string `json:"destination"`
	Selected    bool   `json:"selected,omitempty"` // the destination asked for
	// State has one letter per step, the most restrictive state read in
	// it: "." no reading, "o" open, "h" probing (half-open), "p"
	// paused, "s" suspended.
	State string `json:"state"`
	// The limits in force at the step's latest reading, and the most
	// sessions in use it read; -1 = no reading in the step. Rates are
	// messages/s, 0 = unlimited.
	Concurrency    []int     `json:"concurrency"`
	MaxConcurrency []int     `json:"max_concurrency"`
	Active         []int     `json:"active"`
	Rate           []float64 `json:"rate"`
	MaxRate        []float64 `json:"max_rate"`
	// Counts within the step: transactions started (divide by
	// StepSeconds for the rate in use), recipients delivered, 421
	// replies, and every other refusal (deferral, bounce, expiry).
	Messages   []int `json:"messages"`
	Sent       []int `json:"sent"`
	Replies421 []int `json:"replies_421"`
	Refused    []int `json:"refused"`
	// Pauses are the pauses and suspensions that overlap the hour, to
	// the second, oldest first.
	Pauses []Pause `json:"pauses"`
}

// Pause is one pause or suspension.
type Pause struct {
	From  time.Time `json:"from"`
	Until time.Time `json:"until"`
	State string    `json:"state"` // paused | suspended
}

// Chart returns the hour of the n busiest destinations (by attempts in
// the hour, then by name) and of selected, when it is tracked and not
// among them. Its cost is bounded by the recorder's size, whatever the
// traffic.
func (r *Recorder) Chart(n int, selected string) Chart {
	now := r.now()
	cur := slotOf(now)
	first := cur - Points + 1
	r.mu.Lock()
	defer r.mu.Unlock()
	c := Chart{StepSeconds: int(Step / time.Second), Start: first * int64(Step/time.Second), Points: Points, Now: ms(now),
		Tracked: len(r.dests), MaxTracked: r.max, Destinations: []Series{}}
	type ranked struct {
		name   string
		d      *dest
		weight int
	}
	all := make([]ranked, 0, len(r.dests))
	for name, d := range r.dests {
		w := 0
		for s := first; s <= cur; s++ {
			if p, ok := d.ring.get(s); ok {
				w += p.weight()
			}
		}
		all = append(all, ranked{name, d, w})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].weight != all[j].weight {
			return all[i].weight > all[j].weight
		}
		return all[i].name < all[j].name
	})
	for i, x := range all {
		if i < n || x.name == selected {
			s := x.d.series(first, time.Unix(first*int64(Step/time.Second), 0))
			s.Destination, s.Selected = x.name, x.name == selected
			c.Destinations = append(c.Destinations, s)
		}
	}
	return c
}

// series reads the steps from first on. Caller holds the recorder's
// mutex.
func (d *dest) series(first int64, start time.Time) Series {
	s := Series{
		Concurrency: make([]int, Points), MaxConcurrency: make([]int, Points), Active: make([]int, Points),
		Rate: make([]float64, Points), MaxRate: make([]float64, Points),
		Messages: make([]int, Points), Sent: make([]int, Points), Replies421: make([]int, Points), Refused: make([]int, Points),
		Pauses: []Pause{},
	}
	var state strings.Builder
	state.Grow(Points)
	for i := range Points {
		p, ok := d.ring.get(first + int64(i))
		if !ok || !p.sampled {
			state.WriteByte('.')
			s.Concurrency[i], s.MaxConcurrency[i], s.Active[i], s.Rate[i], s.MaxRate[i] = -1, -1, -1, -1, -1
		} else {
			state.WriteByte(p.state.letter())
			s.Concurrency[i], s.MaxConcurrency[i], s.Active[i] = int(p.conc), int(p.maxConc), int(p.active)
			s.Rate[i], s.MaxRate[i] = round3(p.rate), round3(p.maxRate)
		}
		if ok {
			s.Messages[i], s.Sent[i], s.Replies421[i], s.Refused[i] = int(p.msgs), int(p.sent), int(p.r421), int(p.refused)
		}
	}
	s.State = state.String()
	for _, b := range d.bands.since(start) {
		s.Pauses = append(s.Pauses, Pause{From: ms(b.from), Until: ms(b.until), State: b.state.String()})
	}
	return s
}

// round3 drops the float32 noise (0.1 is 0.10000000149011612).
func round3(f float32) float64 {
	return math.Round(float64(f)*1000) / 1000
}

// ms is t in UTC to the millisecond, what a browser's Date holds.
func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }
