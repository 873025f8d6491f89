package admin

import (
	"fmt"
	"testing"
	"time"

	"sluice/policy"
	"sluice/reply"
	"sluice/scheduler"
)

func attempt(dest string, code int, status string) scheduler.Attempt {
	return scheduler.Attempt{Dest: dest, Domain: dest, Class: policy.ClassThrottle, Status: status,
		Reply: reply.Reply{Stage: reply.StageRcpt, Code: code, Text: "slow down"}}
}

func TestHistoryChart(t *testing.T) {
	t.Parallel()
	clk := at(t0)
	h := NewHistory(2, clk.Now)
	// 3 × 421 now, 1 deferral (450) 2 h ago, one 421 25 h ago (out of
	// the 24 h chart but in the hour-of-day view).
	clk.Advance(-25 * time.Hour)
	h.Observe(attempt("a.test", 421, "deferred"))
	clk.Advance(23 * time.Hour)
	h.Observe(attempt("a.test", 450, "deferred"))
	clk.Advance(2 * time.Hour)
	for range 3 {
		h.Observe(attempt("a.test", 421, "deferred"))
	}
	h.Observe(attempt("b.test", 250, "sent"))
	h.Observe(attempt("c.test", 421, "deferred")) // beyond 2 tracked: "other"

	c := h.Chart()
	if c.BucketSeconds != 300 || len(c.Series) != 3 {
		t.Fatalf("chart: %d series, step %d", len(c.Series), c.BucketSeconds)
	}
	a := c.Series[0]
	if a.Destination != "a.test" || len(a.Replies421) != fineBuckets {
		t.Fatalf("first series = %s (%d buckets)", a.Destination, len(a.Replies421))
	}
	if last := a.Replies421[fineBuckets-1]; last != 3 {
		t.Errorf("last bucket 421s = %d, want 3", last)
	}
	if d := a.Deferred[fineBuckets-1-24]; d != 1 { // 2 h = 24 buckets ago
		t.Errorf("deferred 2h ago = %d, want 1 (%v)", d, a.Deferred)
	}
	if sum(a.Replies421) != 3 {
		t.Errorf("24 h 421s = %d, want 3 (the 25 h old one is out)", sum(a.Replies421))
	}
	if want := int64(t0.Unix()/300-fineBuckets+1) * 300; c.Start != want {
		t.Errorf("start = %d, want %d", c.Start, want)
	}
	hod := c.HourOfDay[0]
	if hod.Replies421[9] != 3 || hod.Replies421[8] != 1 || hod.Deferred[7] != 1 {
		t.Errorf("hour of day = %v / %v", hod.Replies421, hod.Deferred)
	}
	if c.Series[1].Destination != OtherDestination && c.Series[2].Destination != OtherDestination {
		t.Errorf("no %q series: %v, %v", OtherDestination, c.Series[1].Destination, c.Series[2].Destination)
	}
	if n := h.Count421("a.test", time.Hour); n != 3 {
		t.Errorf("Count421 = %d", n)
	}
	// A day later the ring has moved on: stale buckets read as zero.
	clk.Advance(24 * time.Hour)
	if n := sum(h.Chart().Series[0].Replies421); n != 0 {
		t.Errorf("after 24 h: %d 421s still charted", n)
	}
}

func TestHistoryRecent(t *testing.T) {
	t.Parallel()
	clk := at(t0)
	h := NewHistory(5, clk.Now)
	if r := h.Recent("x"); len(r) != 0 {
		t.Fatal(r)
	}
	for i := range recentEvents + 5 {
		a := attempt("x", 421, "deferred")
		a.Reply.Text = fmt.Sprint(i)
		h.Observe(a)
	}
	r := h.Recent("x")
	if len(r) != recentEvents || r[0].Reply != "421 "+fmt.Sprint(recentEvents+4) || r[len(r)-1].Reply != "421 5" {
		t.Fatalf("recent: %d, first %q, last %q", len(r), r[0].Reply, r[len(r)-1].Reply)
	}
	if d, ok := h.DestinationOf("x"); !ok || d != "x" {
		t.Fatal("DestinationOf")
	}
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
