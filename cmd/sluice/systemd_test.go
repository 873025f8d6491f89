package main

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"sluice/internal/syncbuf"
)

// TestWatchdogFeedsOnlyWhenTheLoopsAnswer: WATCHDOG=1 is sent each period
// while every loop answers, never while one is stuck (so that systemd
// restarts a hung relay), and again once it answers; the stall is logged
// once, with the loop's name. Virtual time (testing/synctest).
func TestWatchdogFeedsOnlyWhenTheLoopsAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var stuck atomic.Bool
		var feeds atomic.Int32
		logs := &syncbuf.Buffer{}
		loops := []loop{
			{"scheduler loop", func(context.Context) error { return nil }},
			{"queue commit loop", func(ctx context.Context) error {
				if stuck.Load() {
					<-ctx.Done()
					return ctx.Err()
				}
				return nil
			}},
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			watchdog(ctx, slog.New(slog.NewTextHandler(logs, nil)), 10*time.Second, loops, func() error { feeds.Add(1); return nil })
			close(done)
		}()

		time.Sleep(35 * time.Second)
		synctest.Wait()
		if n := feeds.Load(); n != 3 {
			t.Fatalf("%d feeds in 35 s at 10 s, want 3", n)
		}
		stuck.Store(true)
		time.Sleep(60 * time.Second)
		synctest.Wait()
		if n := feeds.Load(); n != 3 {
			t.Fatalf("fed %d times while the commit loop was stuck", n-3)
		}
		stuck.Store(false)
		time.Sleep(25 * time.Second)
		synctest.Wait()
		if n := feeds.Load(); n < 4 {
			t.Fatalf("not fed again after the loop answered (%d feeds)", n)
		}
		cancel()
		<-done
		out := logs.String()
		if c := strings.Count(out, "watchdog not fed"); c != 1 || !strings.Contains(out, "queue commit loop: no answer within 10s") {
			t.Errorf("stall logged %d times, want once naming the loop:\n%s", c, out)
		}
		if !strings.Contains(out, "watchdog fed again") {
			t.Errorf("recovery not logged:\n%s", out)
		}
	})
}
