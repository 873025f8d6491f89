package admin

import (
	"sort"
	"sync"
	"time"

	"sluice/scheduler"
)

// The history feeds the dashboard chart and `sluice domains show`. It is
// in memory only: after a restart the chart starts empty, which is fine
// for a picture of the last day, and costs no write per attempt.
const (
	fineStep     = 5 * time.Minute
	fineBuckets  = 288 // 24 h of 5-minute buckets
	hourBuckets  = 7 * 24
	recentEvents = 50
	// OtherDestination collects every destination beyond the tracked
	// ones, so that memory and metric label sets stay bounded.
	OtherDestination = "other"
)

type bucket struct {
	slot          int64 // time / step; a stale slot reads as zero
	n421, deferrd int
}

func (b *bucket) add(slot int64, is421, deferred bool) {
	if b.slot != slot {
		*b = bucket{slot: slot}
	}
	if is421 {
		b.n421++
	}
	if deferred {
		b.deferrd++
	}
}

type destHistory struct {
	fine   [fineBuckets]bucket
	hourly [hourBuckets]bucket
	recent [recentEvents]Event
	next   int // recent is a ring; next is the slot to overwrite
	total  int // events ever recorded (to know how many of recent are set)
}

// History is the in-memory record of recent delivery attempts per
// destination. It is safe for concurrent use.
type History struct {
	mu       sync.Mutex
	now      func() time.Time
	max      int
	dests    map[string]*destHistory
	domainOf map[string]string // recipient domain -> destination, bounded
}

// NewHistory tracks at most maxDests destinations by name (the first
// seen); the rest share OtherDestination. now nil = time.Now.
func NewHistory(maxDests int, now func() time.Time) *History {
	if now == nil {
		now = time.Now
	}
	if maxDests < 1 {
		maxDests = 50
	}
	return &History{now: now, max: maxDests, dests: map[string]*destHistory{}, domainOf: map[string]string{}}
}

// label returns the tracked name for dest. Caller holds h.mu.
func (h *History) label(dest string) string {
	if _, ok := h.dests[dest]; ok || len(h.dests) < h.max {
		return dest
	}
	return OtherDestination
}

// Observe records one attempt.
func (h *History) Observe(a scheduler.Attempt) {
	now := h.now()
	is421 := a.Reply.Code == 421
	deferred := a.Status == "deferred"
	h.mu.Lock()
	defer h.mu.Unlock()
	name := h.label(a.Dest)
	d := h.dests[name]
	if d == nil {
		d = &destHistory{}
		h.dests[name] = d
	}
	fs := now.UnixNano() / int64(fineStep)
	d.fine[fs%fineBuckets].add(fs, is421, deferred)
	hs := now.UnixNano() / int64(time.Hour)
	d.hourly[hs%hourBuckets].add(hs, is421, deferred)
	d.recent[d.next] = Event{At: now, Domain: a.Domain, Class: string(a.Class), Status: a.Status, Reply: a.Reply.String()}
	d.next = (d.next + 1) % recentEvents
	d.total++
	if a.Domain != "" && (len(h.domainOf) < 100*h.max || h.domainOf[a.Domain] != "") {
		h.domainOf[a.Domain] = a.Dest
	}
}

// DestinationOf returns the destination a recipient domain was last
// delivered through, if any attempt was seen.
func (h *History) DestinationOf(domain string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.domainOf[domain]
	return d, ok
}

// DomainsOf lists the recipient domains seen grouped into dest.
func (h *History) DomainsOf(dest string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for dom, d := range h.domainOf {
		if d == dest {
			out = append(out, dom)
		}
	}
	sort.Strings(out)
	return out
}

// Recent returns the latest events of dest, newest first.
func (h *History) Recent(dest string) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.dests[dest]
	if d == nil {
		return []Event{}
	}
	n := min(d.total, recentEvents)
	out := make([]Event, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, d.recent[(d.next-i+recentEvents)%recentEvents])
	}
	return out
}

// Count421 returns the 421 replies of dest within the last d (rounded to
// whole 5-minute buckets).
func (h *History) Count421(dest string, d time.Duration) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	dh := h.dests[dest]
	if dh == nil {
		return 0
	}
	cur := h.now().UnixNano() / int64(fineStep)
	n := 0
	for i := int64(0); i < int64(d/fineStep) && i < fineBuckets; i++ {
		if b := dh.fine[(cur-i)%fineBuckets]; b.slot == cur-i {
			n += b.n421
		}
	}
	return n
}

// Chart returns the last 24 h in 5-minute buckets, oldest first, and the
// hour-of-day sums of the last 7 days. Destinations are ordered by their
// 421s and deferrals, most first.
func (h *History) Chart() Chart {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	cur := now.UnixNano() / int64(fineStep)
	first := cur - fineBuckets + 1
	hcur := now.UnixNano() / int64(time.Hour)
	c := Chart{
		BucketSeconds: int(fineStep / time.Second), Start: first * int64(fineStep/time.Second),
		HourOfDayDays: hourBuckets / 24, Series: []Series{}, HourOfDay: []Series{},
	}
	type ranked struct {
		s, hod Series
		weight int
	}
	var all []ranked
	for name, d := range h.dests {
		r := ranked{
			s:   Series{Destination: name, Replies421: make([]int, fineBuckets), Deferred: make([]int, fineBuckets)},
			hod: Series{Destination: name, Replies421: make([]int, 24), Deferred: make([]int, 24)},
		}
		for i := range int64(fineBuckets) {
			slot := first + i
			if b := d.fine[slot%fineBuckets]; b.slot == slot {
				r.s.Replies421[i], r.s.Deferred[i] = b.n421, b.deferrd
				r.weight += b.n421 + b.deferrd
			}
		}
		for i := range int64(hourBuckets) {
			slot := hcur - i
			if b := d.hourly[slot%hourBuckets]; b.slot == slot {
				hour := time.Unix(slot*3600, 0).UTC().Hour()
				r.hod.Replies421[hour] += b.n421
				r.hod.Deferred[hour] += b.deferrd
			}
		}
		all = append(all, r)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].weight != all[j].weight {
			return all[i].weight > all[j].weight
		}
		return all[i].s.Destination < all[j].s.Destination
	})
	for _, r := range all {
		c.Series = append(c.Series, r.s)
		c.HourOfDay = append(c.HourOfDay, r.hod)
	}
	return c
}
