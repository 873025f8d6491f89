package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/internal/fakemx"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startMX(t *testing.T, o fakemx.Options) *fakemx.Server {
	t.Helper()
	o.Logger = quiet()
	s, err := fakemx.Start(o)
	if err != nil {
		t.Fatalf("fakemx: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func TestRunAgainstFakeMX(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		mx          fakemx.Options
		n, c, rcpts int
		perRcpt     bool
		wantAcked   int
		wantFailed  int
		wantLines   int
	}{
		{name: "plain", n: 200, c: 8, rcpts: 1, wantAcked: 200, wantLines: 200},
		{
			name: "temporary refusals are retried",
			mx: fakemx.Options{Script: []fakemx.Rule{
				{Stage: fakemx.StageDataEnd, Reply: "451 4.3.0 try again", Times: 3},
				{Stage: fakemx.StageMail, Reply: "421 4.7.0 go away", Times: 2},
				{Stage: fakemx.StageRcpt, Reply: "450 4.2.0 busy", Times: 2},
			}},
			n: 50, c: 4, rcpts: 1, wantAcked: 50, wantLines: 50,
		},
		{
			name: "permanent refusals are not retried",
			mx: fakemx.Options{Script: []fakemx.Rule{
				{Stage: fakemx.StageRcpt, Match: "user3@", Reply: "550 5.1.1 no such user"},
				{Stage: fakemx.StageDataEnd, Match: "user5@", Reply: "554 5.7.1 rejected"},
			}},
			n: 10, c: 2, rcpts: 1, wantAcked: 8, wantFailed: 2, wantLines: 8,
		},
		{
			name: "per recipient lines skip refused recipients",
			mx: fakemx.Options{Script: []fakemx.Rule{
				{Stage: fakemx.StageRcpt, Match: "user1@", Reply: "550 5.1.1 no such user"},
			}},
			n: 3, c: 1, rcpts: 2, perRcpt: true, wantAcked: 3, wantLines: 5 * 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mx := startMX(t, tc.mx)
			acked := filepath.Join(t.TempDir(), "acked")
			sum, err := run(context.Background(), config{
				Addr: mx.Addr(), N: tc.n, C: tc.c, Size: 2048, Rcpts: tc.rcpts, PerRcpt: tc.perRcpt,
				From: "a@src.test", To: "user%d@dest.test", Acked: acked, RunID: "T",
				Deadline: time.Minute, Backoff: time.Millisecond, Logger: quiet(),
			})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if sum.Sent != tc.n || sum.Acked != tc.wantAcked || sum.Failed != tc.wantFailed {
				t.Errorf("summary %v", sum)
			}
			lines := readLines(t, acked)
			if len(lines) != tc.wantLines {
				t.Errorf("acked file has %d fields, want %d", len(lines), tc.wantLines)
			}
			ids := mx.MessageIDs()
			st := mx.Stats()
			if st.Duplicates != 0 || st.Delivered != tc.wantAcked || st.EHLONames["inject.sluice.test"] == 0 {
				t.Errorf("fake MX stats %+v", st)
			}
			for _, l := range lines {
				if strings.HasPrefix(l, "<inj-T-") && ids[l] != 1 {
					t.Errorf("acked %s delivered %d times", l, ids[l])
				}
			}
		})
	}
}

// TestRunUnderSessionCap has more clients than the receiver allows: the
// refused ones retry until every message is acknowledged exactly once.
func TestRunUnderSessionCap(t *testing.T) {
	t.Parallel()
	mx := startMX(t, fakemx.Options{MaxSessions: 2})
	sum, err := run(context.Background(), config{
		Addr: mx.Addr(), N: 100, C: 6, Size: 512, Rcpts: 1, From: "a@src.test", To: "u%d@dest.test",
		Deadline: time.Minute, Backoff: time.Millisecond, Logger: quiet(),
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	st := mx.Stats()
	if sum.Acked != 100 || st.Delivered != 100 || st.Duplicates != 0 || st.MaxConcurrent > 2 {
		t.Errorf("summary %v, stats %+v", sum, st)
	}
	if len(mx.MessageIDs()) != 100 {
		t.Errorf("%d distinct Message-IDs", len(mx.MessageIDs()))
	}
}

func TestRunDeadlineWhenServerIsDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens: every dial is refused
	acked := filepath.Join(t.TempDir(), "acked")
	sum, err := run(context.Background(), config{
		Addr: addr, N: 5, C: 2, Size: 100, Rcpts: 1, From: "a@src.test", To: "u@dest.test",
		Acked: acked, Deadline: 50 * time.Millisecond, Backoff: time.Millisecond, Logger: quiet(),
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if sum.Acked != 0 || sum.Failed != 5 || sum.Attempts < 5 {
		t.Errorf("summary %v", sum)
	}
	if b, _ := os.ReadFile(acked); len(b) != 0 {
		t.Errorf("acked file %q", b)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []config{
		{Addr: "", N: 1, C: 1, Rcpts: 1},
		{Addr: "x:1", N: 1, C: 0, Rcpts: 1},
		{Addr: "x:1", N: 1, C: 1, Rcpts: 1, To: "u%s@x"},
		{Addr: "x:1", N: 1, C: 1, Rcpts: 1, Wrap: -1},
	} {
		if _, err := run(context.Background(), cfg); err == nil {
			t.Errorf("run accepted %+v", cfg)
		}
	}
}

// TestRecipientsWrap: -wrap N makes the number in -to cycle through N
// values, recipient by recipient, so that 10 messages of 2 recipients
// with -wrap 4 reach 4 domains 5 times each.
func TestRecipientsWrap(t *testing.T) {
	t.Parallel()
	seen := map[string]int{}
	for n := range 10 {
		for _, r := range recipients("u@d%d.test", n, 2, 4) {
			seen[r]++
		}
	}
	want := map[string]int{"u@d0.test": 5, "u@d1.test": 5, "u@d2.test": 5, "u@d3.test": 5}
	if len(seen) != len(want) {
		t.Fatalf("recipients %v, want %v", seen, want)
	}
	for r, n := range want {
		if seen[r] != n {
			t.Fatalf("recipients %v, want %v", seen, want)
		}
	}
	if got := recipients("u%d@d.test", 12345, 1, 0); got[0] != "u12345@d.test" {
		t.Fatalf("without wrap: %v", got)
	}
	if got := recipients("u@d.test", 3, 2, 4); got[0] != "u@d.test" || got[1] != "u@d.test" {
		t.Fatalf("without %%d: %v", got)
	}
}

func TestBuildMessage(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, 100, 2048, 10000} {
		m := string(buildMessage("R", 7, "a@src.test", []string{"u1@d", "u2@d"}, size, time.Unix(0, 0)))
		if len(m) < size || len(m) > size+600 {
			t.Errorf("size %d: got %d bytes", size, len(m))
		}
		if !strings.Contains(m, "\r\nMessage-ID: <inj-R-7@sluice.test>\r\n") {
			t.Errorf("no Message-ID in %q", m)
		}
		for i, l := range strings.Split(m, "\r\n") {
			if len(l) >= 78 || strings.ContainsAny(l, "\r\n") {
				t.Errorf("size %d line %d: %q", size, i, l)
			}
		}
	}
}
