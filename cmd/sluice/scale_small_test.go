package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sluice/internal/queuegen"
)

// TestScaleSmallAdminReads is the SMALL=1 check of bench/scale.sh (issue
// 10, "Counters, not scans"): the operator's read commands cost the
// same with 10,000 and with 100,000 deferred messages. The backlog is
// built offline with `queue import` of a generated stream (SMTP would take
// minutes); the messages are deferred an hour ahead, so the scheduler has
// nothing due and only the reads are timed. Every read runs through the
// binary, as an operator or a dashboard tab runs it: status, queue
// summary, queue list --limit 20 (and of a domain with 5 messages among
// the backlog), domains, /metrics and the dashboard JSON. Wall times are noisy on a shared machine, so each read is the
// median of several calls, and the bound is generous: at 100,000 at most
// 3× the time at 10,000 plus 150 ms. A read that scans the queue takes
// about 10× longer at 100,000 (0.5-1 s for summary and the dashboard) and
// fails it. The full run, up to 1,000,000, is bench/scale.sh.
func TestScaleSmallAdminReads(t *testing.T) {
	bin := buildTool(t, "sluice/cmd/sluice")
	dir := t.TempDir()
	smtpAddr, httpAddr := freeAddr(t), freeAddr(t)
	cfgPath := filepath.Join(dir, "sluice.toml")
	// The route points at a port nothing listens on: nothing is due
	// before the test ends anyway.
	writeConfigRaw(t, cfgPath, fmt.Sprintf(`hostname = "sluice.test"
data_dir = "data"
shutdown_grace = "5s"

[listen]
smtp = %q
http = %q

[auth]
mode = "off"

[[delivery.route]]
domain = "dest.test"
host = %q
tls = "none"
`, smtpAddr, httpAddr, freeAddr(t)))

	const small, large = 10_000, 100_000
	now := time.Now()
	fill := func(first, n int, to string) {
		t.Helper()
		start := time.Now()
		cmd := exec.Command(bin, "queue", "import", "--config", cfgPath)
		pw, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// 512-byte bodies: what a read costs depends on the number of
		// messages, not on their size, and small bodies keep the fill
		// quick.
		gerr := queuegen.Write(pw, queuegen.Options{N: n, First: first, Size: 512, To: to, From: "bench@sender.test",
			Now: now, Spread: 48 * time.Hour, DueAfter: time.Hour, Due: time.Hour, LastReply: "421 4.3.2 try again later"})
		pw.Close()
		if err := cmd.Wait(); err != nil || gerr != nil {
			t.Fatalf("queue import: %v %v\n%s", gerr, err, out.String())
		}
		t.Logf("imported %d messages in %v", n, time.Since(start).Round(time.Millisecond))
	}

	type read struct {
		name string
		run  func() error
	}
	cli := func(args ...string) func() error {
		return func() error {
			out, err := exec.Command(bin, append(args, "--config", cfgPath)...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		}
	}
	get := func(path string) func() error {
		return func() error {
			req, err := http.NewRequest("GET", "http://"+httpAddr+path, nil)
			if err != nil {
				return err
			}
			req.Host = httpAddr // the listener's own address: the host guard serves it
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: HTTP %d", path, resp.StatusCode)
			}
			return nil
		}
	}
	reads := []read{
		{"status", cli("status")},
		{"queue summary", cli("queue", "summary")},
		{"queue list --limit 20", cli("queue", "list", "--limit", "20")},
		{"queue list --domain", cli("queue", "list", "--domain", "rare.test", "--limit", "20")},
		{"domains", cli("domains")},
		{"/metrics", get("/metrics")},
		{"dashboard JSON", get("/v1/dashboard")},
	}
	const calls = 5
	measure := func(queued int) []time.Duration {
		t.Helper()
		relay := startRelay(t, cfgPath, smtpAddr)
		defer relay.stop(t)
		// The summary is exact, not an estimate.
		out, err := exec.Command(bin, "queue", "summary", "--json", "--config", cfgPath).Output()
		if err != nil {
			t.Fatalf("queue summary: %v", err)
		}
		var sum struct {
			Total struct{ Total int } `json:"total"`
		}
		if err := json.Unmarshal(out, &sum); err != nil {
			t.Fatalf("queue summary --json: %v: %.200s", err, out)
		}
		if sum.Total.Total != queued {
			t.Fatalf("queue summary counts %d open recipients, want %d", sum.Total.Total, queued)
		}
		meds := make([]time.Duration, len(reads))
		for i, r := range reads {
			ds := make([]time.Duration, calls)
			for j := range ds {
				start := time.Now()
				if err := r.run(); err != nil {
					t.Fatalf("%s at %d queued: %v", r.name, queued, err)
				}
				ds[j] = time.Since(start)
			}
			slices.Sort(ds)
			meds[i] = ds[calls/2]
		}
		return meds
	}

	// A few messages to another domain, older than the backlog (lower
	// IDs), so that a listing of that domain must find them among it.
	const rare = 5
	fill(0, rare, "user%d@rare.test")
	fill(rare, small-rare, "user%d@dest.test")
	at10k := measure(small)
	fill(small, large-small, "user%d@dest.test")
	at100k := measure(large)

	const ratio, floor = 3, 150 * time.Millisecond
	for i, r := range reads {
		t.Logf("%-22s %8v at %d  %8v at %d", r.name, at10k[i].Round(time.Microsecond), small, at100k[i].Round(time.Microsecond), large)
		if at100k[i] > ratio*at10k[i]+floor {
			t.Errorf("%s: median %v at %d queued, %v at %d: more than %d× + %v (a read that scans the queue)",
				r.name, at100k[i], large, at10k[i], small, ratio, floor)
		}
	}
}
