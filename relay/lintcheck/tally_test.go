package lintcheck

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"sluice/internal/fakeclock"
)

func TestBulkRollingDay(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New()
	b := NewBulk(10)
	steps := []struct {
		advance time.Duration
		domain  string
		want    int // the count Add returns
	}{
		{0, "a.test", 1},
		{time.Minute, "a.test", 2},
		{time.Hour, "a.test", 3},
		{0, "b.test", 1},
		{10 * time.Hour, "a.test", 4},
		// The next day at 04:05: the day is the 24 hourly buckets from
		// 05:00 yesterday, so 03:04, 03:05 and 04:05 have left it.
		{14 * time.Hour, "a.test", 2},
		{30 * time.Hour, "a.test", 1},
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		if got := b.Add(s.domain, clk.Now()); got != s.want {
			t.Errorf("step %d: Add(%s) = %d, want %d", i, s.domain, got, s.want)
		}
	}
	if got := b.Count("b.test", clk.Now()); got != 0 {
		t.Errorf("b.test after two days: %d, want 0", got)
	}
	if got := b.Count("never.test", clk.Now()); got != 0 {
		t.Errorf("unknown domain: %d", got)
	}
}

func TestBulkBoundedKeepsTheBusySender(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New()
	b := NewBulk(100)
	for i := range 1000 {
		b.Add("bulk.test", clk.Now())
		b.Add(fmt.Sprintf("once%d.test", i), clk.Now())
		clk.Advance(time.Second)
	}
	if n := b.Len(); n > 100 {
		t.Fatalf("%d domains kept, want at most 100", n)
	}
	if got := b.Count("bulk.test", clk.Now()); got != 1000 {
		t.Fatalf("the busy sender counts %d, want 1000: it must never be the one evicted", got)
	}
}

func TestHoursClockBack(t *testing.T) {
	t.Parallel()
	now := fakeclock.Start
	var h hours
	h.add(now)
	h.add(now.Add(-2 * time.Hour)) // counted in the newest bucket
	if got := h.total(now); got != 2 {
		t.Fatalf("total %d, want 2", got)
	}
	s := h.series(now)
	if len(s) != Hours || s[Hours-1] != 2 {
		t.Fatalf("series %v", s)
	}
}

func TestTallyHourlyBuckets(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New() // 03:04:05 UTC
	ta := NewTally(10)
	short := Seen{ID: "link-shortener", Severity: "warn", Evidence: "https://bit.ly/a", Fix: "Link to your own domain."}
	caps := Seen{ID: "subject-caps", Severity: "info", Evidence: "SALE", Fix: "Write the Subject in sentence case."}
	ta.Add("a.test", []Seen{short, caps}, clk.Now())
	clk.Advance(time.Hour)
	ta.Add("a.test", []Seen{short}, clk.Now())
	short.Evidence = "https://bit.ly/b"
	ta.Add("a.test", []Seen{short}, clk.Now())
	ta.Add("b.test", []Seen{caps}, clk.Now())
	ta.Add("c.test", nil, clk.Now()) // no finding: not a sender of the report

	r := ta.Report(clk.Now(), nil, 0)
	if got := r.Start; !got.Equal(time.Date(2026, 1, 1, 5, 0, 0, 0, time.UTC)) {
		t.Errorf("start %v, want the hour 23 hours before the current one", got)
	}
	if len(r.Senders) != 2 || r.Senders[0].Domain != "a.test" || r.Senders[0].Total != 4 || r.Senders[1].Domain != "b.test" {
		t.Fatalf("senders %+v", r.Senders)
	}
	f := r.Senders[0].Findings[0]
	want := make([]int, Hours)
	want[Hours-2], want[Hours-1] = 1, 2
	if f.ID != "link-shortener" || f.Count != 3 || !slices.Equal(f.Hourly, want) || f.Evidence != "https://bit.ly/b" || !f.Last.Equal(clk.Now()) {
		t.Errorf("finding %+v, want 3 link-shortener, hourly %v, the last evidence", f, want)
	}

	// A day later the first hour has gone, the second not yet.
	clk.Advance(23 * time.Hour)
	r = ta.Report(clk.Now(), nil, 0)
	if r.Senders[0].Total != 2 || r.Senders[0].Findings[0].Hourly[0] != 2 {
		t.Errorf("a day later: %+v, want the second hour's 2 findings, in the oldest bucket", r.Senders[0])
	}
	clk.Advance(time.Hour)
	if r = ta.Report(clk.Now(), nil, 0); len(r.Senders) != 0 {
		t.Errorf("two days later: %+v, want nothing", r.Senders)
	}
}

func TestTallyReportLimitAndMessages(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New()
	ta, b := NewTally(100), NewBulk(100)
	for i := range 5 {
		d := fmt.Sprintf("d%d.test", i)
		for range i + 1 {
			b.Add(d, clk.Now())
			ta.Add(d, []Seen{{ID: "x", Severity: "warn"}}, clk.Now())
		}
	}
	r := ta.Report(clk.Now(), b, 2)
	if len(r.Senders) != 2 || r.More != 3 || r.Senders[0].Domain != "d4.test" || r.Senders[0].Messages != 5 {
		t.Fatalf("report %+v", r)
	}
}

func TestTallyBounded(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New()
	ta := NewTally(50)
	long := strings.Repeat("é", 1000)
	for i := range 500 {
		var seen []Seen
		for j := range 100 {
			seen = append(seen, Seen{ID: fmt.Sprint(j), Severity: "warn", Evidence: long})
		}
		ta.Add(fmt.Sprintf("d%d.test", i), seen, clk.Now())
	}
	r := ta.Report(clk.Now(), nil, 0)
	if len(r.Senders) > 50 {
		t.Fatalf("%d domains kept, want at most 50", len(r.Senders))
	}
	for _, s := range r.Senders {
		if len(s.Findings) > maxIDsPerDomain {
			t.Fatalf("%s: %d IDs kept", s.Domain, len(s.Findings))
		}
		for _, f := range s.Findings {
			if len(f.Evidence) > maxEvidence || !strings.HasPrefix(long, f.Evidence) {
				t.Fatalf("evidence of %d bytes, or cut inside a rune", len(f.Evidence))
			}
		}
	}
}
