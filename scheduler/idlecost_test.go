package scheduler

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"sluice/config"
	"sluice/internal/fakeclock"
	"sluice/internal/fakemx"
	"sluice/policy"
	"sluice/queue"
	"sluice/relay/outbound"
)

// TestPausedBacklogIdlesOnTheRealQueue (issue 10, "churn while nothing
// can be delivered"): the real queue, policy and outbound client, a
// receiver that answers 421 at the greeting, and a backlog. On a fake
// clock, ten minutes pass: the only writes are each probe's (its lease,
// its outcome, the destination's new pause), nothing between probes, and
// the backlog is never read beyond the probe's one message. The old
// scheduler leased the backlog 1,000 at a time and wrote each job back
// due at the end of the pause, at every look.
func TestPausedBacklogIdlesOnTheRealQueue(t *testing.T) {
	t.Parallel()
	mx, err := fakemx.Start(fakemx.Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
		Outages: []fakemx.Window{{Start: 0, End: 1000 * time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mx.Close() })
	clk := fakeclock.New()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	qo := queueOptions(filepath.Join(t.TempDir(), "queue.db"), log)
	qo.Now, qo.NoSync = clk.Now, true
	q, err := queue.Open(qo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	po := policy.OptionsFrom(config.Default())
	po.Now, po.Store, po.Logger, po.GroupBy = clk.Now, q, log, "domain"
	pol, err := policy.New(po)
	if err != nil {
		t.Fatal(err)
	}
	oo := outbound.OptionsFrom(config.Default())
	oo.Hostname, oo.TLS, oo.LocalAddrs, oo.Logger = "sluice.test", "none", nil, log
	oo.Resolver = hopResolver(t)
	oo.Routes = map[string]outbound.Route{"dest.test": {Host: mx.Addr(), TLS: "none"}}
	out, err := outbound.New(oo)
	if err != nil {
		t.Fatal(err)
	}
	so := testOptions(q, pol, RelayOutbound(out), log)
	so.Clock = clk
	s := mustNew(t, so)
	const n = 2000
	for i := range n {
		if _, err := q.Enqueue(context.Background(), queue.NewMessage{From: "app@src.test", Rcpts: []string{fmt.Sprintf("u%d@dest.test", i)}, Body: []byte("Subject: x\r\n\r\nhello\r\n")}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, context.Background()); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	// still waits until the scheduler has nothing running: the loop asleep
	// with nothing in flight, and no session (a probe's 421 comes back
	// over loopback).
	still := func() {
		t.Helper()
		before := s.turns.Load()
		s.Kick()
		eventually(t, "the scheduler to be still", func() bool {
			s.mu.Lock()
			sessions := s.sessions
			s.mu.Unlock()
			return sessions == 0 && s.quiet.Load() > before
		})
	}
	eventually(t, "the first probe to pause the destination", func() bool { return pol.Paused("dest.test") })
	still()
	commits, refusals := q.Commits(), mx.Stats().OutageRefusals
	for range 40 {
		clk.Advance(15 * time.Second)
		still()
	}
	probes := mx.Stats().OutageRefusals - refusals
	writes := int(q.Commits() - commits)
	t.Logf("10 minutes paused with %d queued: %d probes, %d commits", n, probes, writes)
	if probes == 0 || probes > 6 {
		t.Errorf("%d probes in 10 minutes of pauses from retry_base 1m doubling", probes)
	}
	if writes > 3*probes {
		t.Errorf("%d commits for %d probes: want at most 3 each (lease, outcome, pause)", writes, probes)
	}
	if cnt, _ := q.Counts(); cnt[queue.StateQueued] != n || cnt[queue.StateActive] != 0 {
		t.Errorf("counts after the pauses: %v", cnt)
	}
}
