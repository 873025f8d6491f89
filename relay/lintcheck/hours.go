package lintcheck

import "time"

// Day is how far back the bulk counter and the tally look: a rolling day
// of Hours hourly buckets.
const (
	Hours = 24
	Day   = Hours * time.Hour
)

// hours is a rolling day of counts in hourly buckets (UTC hours), the
// newest last. Reading it moves it to now, so that a bucket is never read
// stale. Not safe for concurrent use: its owner guards it.
type hours struct {
	end int64 // the hour (Unix time / 3600) of n[Hours-1]; 0 = never used
	n   [Hours]uint32
}

func hourOf(t time.Time) int64 { return t.Unix() / 3600 }

// advance shifts the buckets so that the newest is now's hour. A clock
// that goes back counts in the newest bucket rather than rewriting the
// past.
func (h *hours) advance(now time.Time) {
	cur := hourOf(now)
	d := cur - h.end
	switch {
	case h.end == 0:
		h.end = cur
		return
	case d <= 0:
		return
	case d >= Hours:
		clear(h.n[:])
	default:
		copy(h.n[:], h.n[d:])
		clear(h.n[Hours-d:])
	}
	h.end = cur
}

func (h *hours) add(now time.Time) {
	h.advance(now)
	if h.n[Hours-1] < ^uint32(0) {
		h.n[Hours-1]++
	}
}

// total is the count over the last day, as of now.
func (h *hours) total(now time.Time) int {
	h.advance(now)
	s := 0
	for _, v := range h.n {
		s += int(v)
	}
	return s
}

// series is the counts per hour, oldest first, the current hour last.
func (h *hours) series(now time.Time) []int {
	h.advance(now)
	out := make([]int, Hours)
	for i, v := range h.n {
		out[i] = int(v)
	}
	return out
}

// seriesStart is the start of the oldest hour of a series read at now.
func seriesStart(now time.Time) time.Time {
	return time.Unix((hourOf(now)-Hours+1)*3600, 0).UTC()
}
