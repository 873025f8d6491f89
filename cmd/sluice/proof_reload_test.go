package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"sluice/internal/fakemx"
)

// The reload proof (issue 12 item 1): `kill -HUP` and `sluice reload`
// apply a changed configuration with no dropped connection and no lost
// mail.

// reloadConfig is the config of the reload proofs: mail for dest.test
// goes to sink, at most maxConc sessions at once.
func reloadConfig(smtp, sink string, maxConc int) string {
	return fmt.Sprintf(`hostname = "sluice.test"
data_dir = "data"
shutdown_grace = "5s"

[listen]
smtp = %q
http = ""

[limits]
max_connections = 200
per_client_connections = 100

[policy]
retry_base = "1s"
retry_max = "2s"
max_concurrency = %d
initial_concurrency = %d

[auth]
mode = "off"

[[delivery.route]]
domain = "dest.test"
host = %q
tls = "none"
`, smtp, maxConc, maxConc, sink)
}

// reloadWindow is one reload as the test saw it: the route it put in
// force and when it was asked for and answered.
type reloadWindow struct {
	start, end time.Time
	sink       int
}

// TestProofReloadUnderLoad: 20 reloads while 5,000 messages flow from 10
// long-lived client connections. Each reload moves the route of
// dest.test to the other of two sinks. Every acknowledged message
// arrives exactly once; no client connection is dropped (the injector
// needs no retry); each sink receives mail in its own periods, and after
// a reload the old sink gets at most one message per session that was
// sending when it came (a session in flight finishes under the config it
// started with, then ends).
func TestProofReloadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	const (
		messages  = 5000
		reloads   = 20
		maxConc   = 8
		perPeriod = 40 // deliveries each period must see at its own sink before the next reload
	)
	sinks := []*fakemx.Server{startFakeMX(t, fakemx.Options{}), startFakeMX(t, fakemx.Options{})}
	dir := t.TempDir()
	smtp := freeAddr(t)
	cfgPath := filepath.Join(dir, "sluice.toml")
	writeConfigRaw(t, cfgPath, reloadConfig(smtp, sinks[0].Addr(), maxConc))
	r := startRelay(t, cfgPath, smtp)

	inj := buildTool(t, "sluice/cmd/sluice-inject")
	acked := filepath.Join(dir, "acked.txt")
	cmd := exec.Command(inj, "-addr", smtp, "-n", fmt.Sprint(messages), "-c", "10", "-size", "300",
		"-from", "app@src.test", "-to", "u%d@dest.test", "-acked", acked, "-deadline", "120s")
	var injOut strings.Builder
	cmd.Stdout, cmd.Stderr = &injOut, &injOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	injDone := make(chan error, 1)
	go func() { injDone <- cmd.Wait() }()

	delivered := func(i int) int { return sinks[i].Stats().Delivered }
	windows := []reloadWindow{{sink: 0}}
	hups := 0
	for k := 1; k <= reloads; k++ {
		cur := windows[len(windows)-1].sink
		// The period of the current route has mail at its sink.
		base := delivered(cur)
		if k == 1 {
			base = 0
		}
		eventually(t, 60*time.Second, fmt.Sprintf("%d deliveries at sink %d before reload %d", perPeriod, cur, k), func() bool {
			return delivered(cur)-base >= perPeriod
		})
		next := 1 - cur
		writeConfigRaw(t, cfgPath, reloadConfig(smtp, sinks[next].Addr(), maxConc))
		w := reloadWindow{start: time.Now(), sink: next}
		if k%4 == 0 {
			// kill -HUP, as systemctl reload does: done when the log says so.
			hups++
			if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "the reload in the log", func() bool {
				return strings.Count(relayLog(cfgPath), "config reloaded") == k
			})
		} else if out, code := cli(t, "reload", "--config", cfgPath); code != 0 || !strings.Contains(out, "delivery.route[1].host") {
			t.Fatalf("reload %d: exit %d\n%s", k, code, out)
		}
		w.end = time.Now()
		windows = append(windows, w)
	}
	last := windows[len(windows)-1].sink
	base := delivered(last)
	eventually(t, 60*time.Second, "mail at the last sink", func() bool { return delivered(last)-base >= 1 })

	if err := <-injDone; err != nil {
		t.Fatalf("injector: %v\n%s", err, injOut.String())
	}
	summary := strings.TrimSpace(injOut.String())
	t.Logf("injector: %s", summary)
	if !strings.Contains(summary, fmt.Sprintf("sent=%d acked=%d failed=0 attempts=%d ", messages, messages, messages)) {
		t.Errorf("the injector needed retries or lost messages (a connection dropped or refused during a reload?): %s", summary)
	}
	ack := readLines(acked)
	eventually(t, 120*time.Second, "every message at a sink", func() bool {
		return delivered(0)+delivered(1) >= len(ack)
	})

	// Exactly once, across both sinks.
	got := map[string]int{}
	for _, s := range sinks {
		for id, n := range s.MessageIDs() {
			got[id] += n
		}
	}
	lost, dups := 0, 0
	for _, id := range ack {
		switch n := got[id]; {
		case n == 0:
			lost++
		case n > 1:
			dups += n - 1
		}
	}
	if len(ack) != messages || lost != 0 || dups != 0 || delivered(0)+delivered(1) != messages {
		t.Errorf("acknowledged %d of %d, lost %d, duplicated %d, delivered %d+%d", len(ack), messages, lost, dups, delivered(0), delivered(1))
	}

	// The right sink in each period.
	type delivery struct {
		at   time.Time
		sink int
	}
	var ds []delivery
	for i, s := range sinks {
		for _, rs := range s.Stats().Recipients {
			if !rs.Delivered.IsZero() {
				ds = append(ds, delivery{rs.Delivered, i})
			}
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].at.Before(ds[j].at) })
	inPeriod := make([]int, len(windows)) // deliveries at the period's own sink
	late := make([]int, len(windows))     // at the previous sink, after the reload answered
	during := 0
	for _, d := range ds {
		k := 0 // the last reload that answered before d
		inFlight := false
		for i := 1; i < len(windows); i++ {
			if !d.at.Before(windows[i].start) && !d.at.After(windows[i].end) {
				inFlight = true
			}
			if d.at.After(windows[i].end) {
				k = i
			}
		}
		switch {
		case inFlight:
			during++ // either sink: the swap happens inside the reload
		case d.sink == windows[k].sink:
			inPeriod[k]++
		case k > 0:
			late[k]++
			if d.at.Sub(windows[k].end) > 10*time.Second {
				t.Errorf("a delivery at the old sink %v after reload %d", d.at.Sub(windows[k].end), k)
			}
		default:
			t.Errorf("a delivery at sink %d before any reload", d.sink)
		}
	}
	for k := range windows {
		if inPeriod[k] == 0 {
			t.Errorf("period %d: no mail at its sink %d", k, windows[k].sink)
		}
		if late[k] > maxConc {
			t.Errorf("reload %d: %d deliveries at the old sink after it, more than the %d sessions that may have been sending", k, late[k], maxConc)
		}
	}
	t.Logf("%d reloads (%d by SIGHUP): per period at its own sink %v; at the old sink after a reload %v; during a reload %d",
		reloads, hups, inPeriod, late, during)
	_ = os.Remove(acked)
	r.stop(t)
	checkQueueFile(t, filepath.Join(dir, "data"))
	if n := strings.Count(relayLog(cfgPath), "config reloaded"); n != reloads {
		t.Errorf("%d reloads logged, want %d", n, reloads)
	}
}
