package scheduler

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sluice/config"
	"sluice/internal/fakemx"
	"sluice/internal/syncbuf"
	"sluice/policy"
	"sluice/queue"
	"sluice/relay/outbound"
)

// These tests run the real queue, policy, scheduler and outbound client
// against the project's scriptable fake MX on loopback. Time constants are
// scaled to seconds; the assertions are about behaviour (everything
// delivered, no duplicates, refusals stopped), not speed.

type harness struct {
	t     *testing.T
	q     *queue.Queue
	pol   *policy.Policy
	mx    *fakemx.Server
	sched *Scheduler
	stop  func()
	logs  *syncbuf.Buffer
}

func newHarness(t *testing.T, mxo fakemx.Options, tweak func(*policy.Options)) *harness {
	return newHarnessWith(t, mxo, tweak, nil)
}

func newHarnessWith(t *testing.T, mxo fakemx.Options, tweak func(*policy.Options), schedTweak func(*Options)) *harness {
	t.Helper()
	mxo.Addr = "127.0.0.1:0"
	mxo.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	mx, err := fakemx.Start(mxo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mx.Close() })
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	q, err := queue.Open(queueOptions(filepath.Join(t.TempDir(), "queue.db"), log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	// The daemon's options from the default config, scaled to seconds.
	po := policy.OptionsFrom(config.Default())
	po.RetryBase, po.RetryMax, po.ThrottlePause = 500*time.Millisecond, 2*time.Second, 500*time.Millisecond
	po.GreylistDefault, po.GreylistMargin, po.DecreaseWindow = time.Second, 200*time.Millisecond, 500*time.Millisecond
	po.MaxConcurrency, po.InitialConcurrency, po.GroupBy, po.Store, po.Logger = 20, 1, "domain", q, log
	if tweak != nil {
		tweak(&po)
	}
	pol, err := policy.New(po)
	if err != nil {
		t.Fatal(err)
	}
	oo := outbound.OptionsFrom(config.Default())
	oo.Hostname, oo.TLS, oo.LocalAddrs, oo.Logger = "sluice.test", "none", nil, log
	oo.Resolver = hopResolver(t) // every domain has a route to an address
	oo.Routes = map[string]outbound.Route{
		"dest.test": {Host: mx.Addr(), TLS: "none"},
		"slow.test": {Host: mx.Addr(), TLS: "none"},
		"fast.test": {Host: mx.Addr(), TLS: "none"},
	}
	out, err := outbound.New(oo)
	if err != nil {
		t.Fatal(err)
	}
	so := testOptions(q, pol, RelayOutbound(out), log)
	if schedTweak != nil {
		schedTweak(&so)
	}
	s := mustNew(t, so)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, context.Background()); close(done) }()
	h := &harness{t: t, q: q, pol: pol, mx: mx, sched: s, logs: logs}
	h.stop = func() { cancel(); <-done }
	t.Cleanup(func() { h.stop() })
	return h
}

// inject queues n messages, each with its own recipient and Message-ID.
func (h *harness) inject(n int, from string) {
	h.t.Helper()
	h.injectTo(n, from, "dest.test")
}

func (h *harness) injectTo(n int, from, domain string) {
	h.t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf("From: <%s>\r\nTo: <user%d@%s>\r\nSubject: test %d\r\nMessage-ID: <m%d.%s@sluice.test>\r\n\r\nhello\r\n", from, i, domain, i, i, domain)
			_, err := h.q.Enqueue(context.Background(), queue.NewMessage{From: from, Rcpts: []string{fmt.Sprintf("user%d@%s", i, domain)}, Body: []byte(body)})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			h.t.Fatal(err)
		}
	}
	h.sched.Kick()
}

func (h *harness) waitDelivered(n int, within time.Duration) fakemx.Stats {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := h.mx.Stats()
		if st.Delivered >= n {
			return st
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("delivered %d of %d within %v; stats %+v\nlog tail:\n%s", st.Delivered, n, within, st, tail(h.logs.String(), 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestDeliversEverythingOnce(t *testing.T) {
	h := newHarness(t, fakemx.Options{}, nil)
	h.inject(200, "app@src.test")
	st := h.waitDelivered(200, 20*time.Second)
	if st.Duplicates != 0 {
		t.Errorf("duplicates: %d", st.Duplicates)
	}
	for name := range st.EHLONames {
		if name != "sluice.test" {
			t.Errorf("EHLO %q, want our hostname", name)
		}
	}
	if !strings.Contains(h.logs.String(), "status=sent") {
		t.Error("no mail-log line")
	}
}

// TestThrottledReceiverStopsRefusing: a receiver that allows 3 sessions
// and 100 msg/s sees its refusals stop once the destination has adapted.
func TestThrottledReceiverStopsRefusing(t *testing.T) {
	h := newHarness(t, fakemx.Options{MaxSessions: 3, RatePerWindow: 100, Window: time.Second}, nil)
	const n = 400
	h.inject(n, "app@src.test")
	st := h.waitDelivered(n, 60*time.Second)
	t.Logf("delivered %d, 421s %d (sessions %d, rate %d), peak concurrency %d, dups %d",
		st.Delivered, st.Refused421, st.SessionRefusals, st.RateRefusals, st.MaxConcurrent, st.Duplicates)
	if st.Duplicates != 0 {
		t.Errorf("duplicates: %d", st.Duplicates)
	}
	if per := float64(st.Refused421) / float64(st.Delivered); per > 0.25 {
		t.Errorf("%.2f refusals per delivered message: the relay keeps hammering", per)
	}
}

// TestGreylistPassesOnFirstRetry: a hinted greylist is passed on the first
// retry: one refusal per recipient.
func TestGreylistPassesOnFirstRetry(t *testing.T) {
	h := newHarness(t, fakemx.Options{Greylist: 2 * time.Second, GreylistText: "451 4.7.1 Greylisted, try again in %d seconds"}, nil)
	const n = 30
	h.inject(n, "app@src.test")
	st := h.waitDelivered(n, 20*time.Second)
	if per := float64(st.GreylistReplies) / n; per > 1.1 {
		t.Errorf("%.2f greylist replies per recipient, want about 1", per)
	}
}

// TestOutageProbesThenDrains: during an outage the destination is probed,
// not hammered, and mail drains after it.
func TestOutageProbesThenDrains(t *testing.T) {
	h := newHarness(t, fakemx.Options{Outages: []fakemx.Window{{Start: 0, End: 3 * time.Second}}}, nil)
	h.inject(100, "app@src.test")
	st := h.waitDelivered(100, 20*time.Second)
	// Backoff 0.5 s, 1 s, 2 s...: a handful of probes, not one per message.
	if st.OutageRefusals > 8 {
		t.Errorf("%d refusals during a 3 s outage: want a few probes", st.OutageRefusals)
	}
}

// TestBounceSendsDSNAndSuppresses: a 5.1.1 bounces with a DSN to the
// sender (through the queue) and suppresses the address.
func TestBounceSendsDSNAndSuppresses(t *testing.T) {
	h := newHarness(t, fakemx.Options{Script: []fakemx.Rule{{Stage: "rcpt", Match: "user0@", Reply: "550 5.1.1 no such user"}}}, nil)
	h.inject(1, "app@dest.test") // the sender is at the same fake MX, so the DSN arrives there too
	st := h.waitDelivered(1, 10*time.Second)
	_ = st
	deadline := time.Now().Add(5 * time.Second)
	for !h.q.IsSuppressed("user0@dest.test") {
		if time.Now().After(deadline) {
			t.Fatal("address not suppressed after 5.1.1")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok := h.mx.Stats().Recipients["app@dest.test"]; !ok {
		t.Errorf("no DSN reached the sender; recipients: %v", h.mx.Stats().Recipients)
	}
}

// TestSlowRateWaitsWithoutSpinning: with a rate far below one message per
// MaxInlineWait, sessions hand their job back and the destination waits
// for the token time; nothing spins meanwhile.
func TestSlowRateWaitsWithoutSpinning(t *testing.T) {
	h := newHarness(t, fakemx.Options{}, func(o *policy.Options) {
		o.Destinations = []policy.DestinationOptions{{Match: "dest.test", Rate: 0.2}} // one message per 5 s
	})
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	h.inject(2, "app@src.test")
	h.waitDelivered(2, 15*time.Second)
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	elapsed := time.Since(start)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
	if elapsed < 4*time.Second {
		t.Errorf("2 messages at 0.2/s took %v: the rate was not kept", elapsed)
	}
	if cpu > elapsed/4 {
		t.Errorf("%v of CPU in %v of waiting for rate tokens: the scheduler spins", cpu, elapsed)
	}
}

// TestSlowDestinationDoesNotStarveOthers: a destination that drains at one
// message a second leases only what it can start; a fast destination is
// served at once beside it.
func TestSlowDestinationDoesNotStarveOthers(t *testing.T) {
	h := newHarnessWith(t, fakemx.Options{}, func(o *policy.Options) {
		o.Destinations = []policy.DestinationOptions{{Match: "slow.test", Rate: 1}}
	}, nil)
	h.injectTo(60, "app@src.test", "slow.test")
	h.injectTo(20, "app@src.test", "fast.test")
	deadline := time.Now().Add(10 * time.Second)
	for {
		fast := 0
		for rcpt, r := range h.mx.Stats().Recipients {
			if strings.HasSuffix(rcpt, "@fast.test") && !r.Delivered.IsZero() {
				fast++
			}
		}
		if fast == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 20 fast.test messages delivered in 10 s behind a slow destination", fast)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
