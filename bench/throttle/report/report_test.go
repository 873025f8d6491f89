package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"sluice/internal/fakemx"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func TestParseTimes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantErr bool
		end     time.Time
	}{
		{"ok", "mx_start=1764072000\ninject_start=1764072000.5\nend=1764072010.25\n", false, time.Unix(1764072010, 250000000)},
		{"blank lines", "\nmx_start=1\n\ninject_start=2\nend=3\n", false, time.Unix(3, 0)},
		{"missing end", "mx_start=1\ninject_start=2\n", true, time.Time{}},
		{"no equals", "mx_start 1\n", true, time.Time{}},
		{"not a number", "mx_start=x\ninject_start=2\nend=3\n", true, time.Time{}},
		{"negative", "mx_start=-1\ninject_start=2\nend=3\n", true, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseTimes(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && !got["end"].Equal(tc.end) {
				t.Errorf("end = %v, want %v", got["end"], tc.end)
			}
		})
	}
}

func FuzzParseTimes(f *testing.F) {
	f.Add("mx_start=1\ninject_start=2\nend=3\n")
	f.Add("end=1e10")
	f.Add("=\n=")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTimes(strings.NewReader(s))
		if err == nil && len(got) < 3 {
			t.Fatalf("accepted %q without the three keys", s)
		}
	})
}

func TestQuantile(t *testing.T) {
	t.Parallel()
	d := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tests := []struct {
		q    float64
		in   []time.Duration
		want time.Duration
	}{
		{0.5, d, 5},
		{0.95, d, 10},
		{1, d, 10},
		{0, d, 1},
		{0.5, nil, 0},
		{0.5, []time.Duration{7}, 7},
	}
	for _, tc := range tests {
		if got := quantile(tc.in, tc.q); got != tc.want {
			t.Errorf("quantile(%v, %v) = %v, want %v", tc.in, tc.q, got, tc.want)
		}
	}
}

// fakeRun builds a side that delivered user0..user(n-1) one per 10 ms
// from 1 s after the fake MX start.
func fakeRun(n int, refused, greylist int) *run {
	st := fakemx.Stats{Recipients: map[string]fakemx.RecipientStats{}, Refused421: refused, OutageRefusals: refused}
	for i := range n {
		first := t0.Add(time.Second)
		st.Recipients[string(rune('a'+i%26))+strings.Repeat("x", i/26)] = fakemx.RecipientStats{
			FirstAttempt:    first,
			Delivered:       first.Add(time.Duration(i) * 10 * time.Millisecond),
			Deliveries:      1,
			GreylistReplies: greylist,
		}
	}
	return &run{Stats: st, MXStart: t0, InjectStart: t0, End: t0.Add(30 * time.Second)}
}

func TestTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sc   scenario
		want []string
	}{
		{scenario{Name: "throttle", N: 100, Rate: 10, Window: time.Second},
			[]string{"delivered", "100/100", "ideal 10.0", "421 per delivered", "0.50", "2.0"}},
		{scenario{Name: "throttle", N: 200, Rate: 10, Window: time.Second},
			[]string{"100/200", "100 after 30.0"}},
		{scenario{Name: "greylist-plain", N: 100, Greylist: 500 * time.Millisecond},
			[]string{"lag median (s)", "0.0", "lag max (s)", "2.00", "<= 2"}},
		{scenario{Name: "outage", N: 100, Outages: []fakemx.Window{{Start: 0, End: time.Second}}},
			[]string{"421 at greeting in outage", "50", "last delivery after end (s)", "1.0"}},
		// Deliveries fall in 1-2s: the empty first bucket is a row of
		// zeros, and the limits change with the schedule at 1s.
		{scenario{Name: "shifting", N: 100, Sessions: 3, Rate: 10, Window: time.Second, Bucket: time.Second,
			Schedule: []fakemx.Limits{{At: time.Second, MaxSessions: 1, RatePerWindow: 2}}},
			[]string{"0-1s", "10 (K=3)", "1-2s", "2 (K=1)", "100"}},
		// Unhinted greylisting: replies per recipient and the wait from
		// the first attempt (0 to 0.99 s here) against 1.5 G.
		{scenario{Name: "greylist-2s", N: 100, Greylist: 2 * time.Second},
			[]string{"greylist replies/rcpt", "2.00", "<= 1.1", "first attempt to delivery, max (s)", "1.0", "<= 3.0 (1.5 G)"}},
		// A drop of 10/s to 2/s at 1 s: 100 messages take 10 + 45 windows.
		{scenario{Name: "drop", N: 100, Sessions: 3, Rate: 10, Window: time.Second, Bucket: time.Second,
			Schedule: []fakemx.Limits{{At: time.Second, MaxSessions: 3, RatePerWindow: 2}}},
			[]string{"<= 59.8 (1.3 × ideal 46.0)", "421 per delivered", "<= 0.05"}},
	}
	for _, tc := range tests {
		t.Run(tc.sc.Name, func(t *testing.T) {
			t.Parallel()
			tb, err := tc.sc.table(fakeRun(100, 50, 2), nil)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			tb.write(&b)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("table lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
}

func TestTableErrors(t *testing.T) {
	t.Parallel()
	for _, sc := range []scenario{{Name: "nope"}, {Name: "outage"}, {Name: "greylist-soon"}} {
		if _, err := sc.table(nil, nil); err == nil {
			t.Errorf("%q: no error", sc.Name)
		}
	}
}

func TestTableAligned(t *testing.T) {
	t.Parallel()
	tb := &table{cols: []string{"", "a", "bb"}}
	tb.add("row one", "1", "22")
	tb.add("r2", "333", "4")
	var b bytes.Buffer
	tb.write(&b)
	want := "           a  bb\nrow one    1  22\nr2       333   4\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
}
