package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"sluice/admin"
	"sluice/admin/timeline"
	"sluice/internal/fakemx"
	"sluice/internal/testpeer"
)

// chromium finds the system browser; the test skips without it (test.sh
// installs Debian's chromium).
func chromium(t *testing.T) string {
	t.Helper()
	return testpeer.Need(t, "chromium", "chromium-browser", "google-chrome")
}

// TestBrowserDashboard loads the dashboard of a running daemon in a real
// headless Chromium and checks that the destination table and the 421
// chart render with the data the daemon holds.
func TestBrowserDashboard(t *testing.T) {
	browser := chromium(t)
	mx, err := fakemx.Start(fakemx.Options{Addr: "127.0.0.1:0", Outages: []fakemx.Window{{Start: 0, End: time.Hour}}, Logger: quietTestLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer mx.Close()
	dir := t.TempDir()
	smtpAddr, httpAddr := freeAddr(t), freeAddr(t)
	cfg := writeAdminConfig(t, dir, smtpAddr, httpAddr, routeTo("dest.test", mx.Addr()))
	// One pause that outlasts the test: with the suite's 1 s steps the
	// destination flips between paused and probing while the page loads,
	// and the page and the test's own read of the data would disagree.
	writeConfigRaw(t, cfg, strings.Replace(readFile(t, cfg), "retry_base = \"1s\"\nretry_max = \"2s\"", "retry_base = \"1h\"\nretry_max = \"2h\"", 1))
	if !strings.Contains(readFile(t, cfg), "retry_base = \"1h\"") {
		t.Fatal("the test config no longer has the retry keys this test lengthens")
	}
	startRelay(t, cfg, smtpAddr)
	submit(t, smtpAddr, 3, "user@dest.test")

	// Wait until the daemon holds 421s for dest.test, and read what it
	// holds: the page must show the same.
	var dash admin.Dashboard
	eventually(t, 15*time.Second, "421s in the dashboard data", func() bool {
		res, err := http.Get("http://" + httpAddr + "/v1/dashboard")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		dash = admin.Dashboard{}
		if json.NewDecoder(res.Body).Decode(&dash) != nil || len(dash.Chart.Series) == 0 {
			return false
		}
		d, ok := findDest(dash.Domains, "dest.test")
		return ok && d.Replies421 > 0
	})
	want421 := 0
	for _, n := range dash.Chart.Series[0].Replies421 {
		want421 += n
	}

	ctx, cancel := context.WithTimeout(browserContext(t, browser), 60*time.Second)
	defer cancel()

	var rowText, state, open, total421, chartDest, shapeTotal string
	var bars int
	err = chromedp.Run(ctx,
		chromedp.Navigate("http://"+httpAddr+"/"),
		chromedp.WaitVisible(`body[data-loaded="1"]`, chromedp.ByQuery),
		chromedp.Text(`#destinations tr[data-destination="dest.test"]`, &rowText, chromedp.ByQuery),
		chromedp.Text(`#destinations tr[data-destination="dest.test"] td:nth-child(2)`, &state, chromedp.ByQuery),
		chromedp.Text(`#destinations tr[data-destination="dest.test"] td.open`, &open, chromedp.ByQuery),
		chromedp.AttributeValue(`#chart svg[data-destination="dest.test"]`, "data-total-421", &total421, nil, chromedp.ByQuery),
		chromedp.Text(`#chart .chart-row .label`, &chartDest, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll('#chart svg[data-destination="dest.test"] rect.r421').length`, &bars),
		chromedp.Text(`#shape tr[data-domain="dest.test"] td:nth-child(2)`, &shapeTotal, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	d, _ := findDest(dash.Domains, "dest.test")
	if state == "" || rowText == "" {
		t.Fatalf("destination row not rendered: %q", rowText)
	}
	if got, _ := strconv.Atoi(total421); got < want421 || got == 0 {
		t.Errorf("chart shows %s 421s, daemon holds %d", total421, want421)
	}
	if chartDest != "dest.test" || bars == 0 {
		t.Errorf("chart row %q with %d red bars", chartDest, bars)
	}
	if shapeTotal != "3" {
		t.Errorf("queue shape shows %q recipients for dest.test, want 3", shapeTotal)
	}
	if open != "3" {
		t.Errorf("destination row shows %q open recipients for dest.test, want 3", open)
	}
	if d.State == "" || len(state) < len(d.State) || state[:len(d.State)] != d.State {
		t.Errorf("state cell %q, daemon says %q", state, d.State)
	}
}

// browserContext starts a headless Chromium for the test, stopped and
// cleaned up when the test ends.
func browserContext(t *testing.T, browser string) context.Context {
	t.Helper()
	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox, // the tests run as root in a container
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
	)
	if os.Getenv("SLUICE_BROWSER_HEADFUL") != "" {
		opts = append(opts, chromedp.Flag("headless", false))
	}
	// Cleanups run last-registered first, and all after the deferred
	// calls: the browser context is closed, then the allocator kills the
	// main process and waits for it, then every helper process of this
	// profile is gone, and only then does t.TempDir remove the profile.
	t.Cleanup(func() { waitBrowserGone(t, profile) })
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelA)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(cancelB)
	return bctx
}

// TestBrowserControlLoop runs the relay against a receiver that caps
// sessions and rate with 421s, and checks, in a real Chromium while mail
// is still flowing, that the dashboard charts the control loop of the
// destination: the step readings of its concurrency limit, the
// deliveries, and a mark for each step with 421s, matching the daemon's
// own data; the page header shows the version with its revision, and
// times in UTC. It saves a screenshot of the page zoomed to the last 5
// minutes (in the test's temporary directory; SLUICE_BROWSER_SHOT=FILE
// copies it there), and with SLUICE_LONG=1 sends 1,500 messages and
// lets the run go on for 90 s first, for a fuller picture.
func TestBrowserControlLoop(t *testing.T) {
	browser := chromium(t)
	long := os.Getenv("SLUICE_LONG") != ""
	// Two sessions at most and 8 transactions a second: slow start climbs
	// into the session cap, and the rate into the rate cap.
	mx, err := fakemx.Start(fakemx.Options{Addr: "127.0.0.1:0", MaxSessions: 2, RatePerWindow: 8, Window: time.Second, Logger: quietTestLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer mx.Close()
	dir := t.TempDir()
	smtpAddr, httpAddr := freeAddr(t), freeAddr(t)
	cfg := writeAdminConfig(t, dir, smtpAddr, httpAddr, routeTo("dest.test", mx.Addr()))
	startRelay(t, cfg, smtpAddr)
	start := time.Now()
	n := 300 // half a minute of mail at the receiver's rate
	if long {
		n = 1500
	}
	submit(t, smtpAddr, n, "user@dest.test")

	// The daemon's own data: the run is throttled and charted.
	var s timeline.Series
	readings := func(s timeline.Series) int { return len(s.State) - strings.Count(s.State, ".") }
	eventually(t, 40*time.Second, "421s, deliveries and two step readings in the timeline", func() bool {
		res, err := http.Get("http://" + httpAddr + "/v1/dashboard")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var d admin.Dashboard
		if json.NewDecoder(res.Body).Decode(&d) != nil {
			return false
		}
		for _, x := range d.Timeline.Destinations {
			if x.Destination == "dest.test" {
				s = x
				return sum(s.Replies421) > 0 && sum(s.Sent) > 0 && readings(s) >= 2
			}
		}
		return false
	})
	if long {
		time.Sleep(time.Until(start.Add(90 * time.Second)))
	}

	var st admin.Status
	cliJSON(t, &st, "status", "--config", cfg)
	ctx, cancel := context.WithTimeout(browserContext(t, browser), 60*time.Second)
	defer cancel()
	var (
		samples, marks421, limitPoints, sentPoints string
		rects421, zoomed421                        int
		header, updated                            string
		shot                                       []byte
	)
	chart := `#timeline svg.timeline[data-destination="dest.test"]`
	err = chromedp.Run(ctx,
		chromedp.Navigate("http://"+httpAddr+"/"),
		chromedp.WaitVisible(`body[data-loaded="1"]`, chromedp.ByQuery),
		chromedp.WaitVisible(chart, chromedp.ByQuery),
		chromedp.AttributeValue(chart, "data-samples", &samples, nil, chromedp.ByQuery),
		chromedp.AttributeValue(chart, "data-marks-421", &marks421, nil, chromedp.ByQuery),
		chromedp.AttributeValue(chart+` path.conc-limit`, "data-points", &limitPoints, nil, chromedp.ByQuery),
		chromedp.AttributeValue(chart+` path.sent`, "data-points", &sentPoints, nil, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll('`+chart+` rect.mark-421').length`, &rects421),
		chromedp.Text(`#status`, &header, chromedp.ByQuery),
		chromedp.Text(`#updated`, &updated, chromedp.ByQuery),
		// The last 5 minutes, zoomed: the run so far.
		chromedp.Click(`#tl-window button[data-window="5 min"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#tl-window button.on[data-window="5 min"]`, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll('`+chart+` rect.mark-421').length`, &zoomed421),
		chromedp.FullScreenshot(&shot, 100),
	)
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	png := filepath.Join(t.TempDir(), "dashboard.png")
	if err := os.WriteFile(png, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	if to := os.Getenv("SLUICE_BROWSER_SHOT"); to != "" {
		if err := os.WriteFile(to, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot copied to %s", to)
	}
	atoi := func(v string) int { n, _ := strconv.Atoi(v); return n }
	t.Logf("chart: %s step readings, %s 421s in %d marked steps, limit line over %s steps, deliveries in %s steps; header %q",
		samples, marks421, rects421, limitPoints, sentPoints, header)
	// The page reads the data later than the test did, on a live run:
	// it shows at least as much.
	if atoi(samples) < readings(s) || atoi(limitPoints) < readings(s) {
		t.Errorf("chart has %s step readings and a limit line over %s steps; the daemon held %d", samples, limitPoints, readings(s))
	}
	if atoi(marks421) < sum(s.Replies421) || rects421 == 0 {
		t.Errorf("chart shows %s 421s in %d marks; the daemon held %d", marks421, rects421, sum(s.Replies421))
	}
	if zoomed421 == 0 && !long {
		t.Error("the 5-minute view lost the 421 marks of the run")
	}
	if atoi(sentPoints) == 0 {
		t.Error("no delivery drawn")
	}
	if !strings.Contains(header, st.Version) || !strings.Contains(st.Version, "(rev ") {
		t.Errorf("header %q, status version %q: want the version with its revision", header, st.Version)
	}
	if rev, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil && !strings.Contains(st.Version, strings.TrimSpace(string(rev))) {
		t.Errorf("status version %q does not name the checkout's revision %s", st.Version, rev)
	}
	if !strings.HasSuffix(updated, "Z") {
		t.Errorf("page time %q is not UTC", updated)
	}
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// waitBrowserGone kills every process of the Chromium that used profile
// and waits until none is left. chromedp waits only for the main
// process, but the zygote, renderer and utility processes it forked are
// orphaned when it is killed and still write into the profile for a
// moment; removing the directory under them failed about one run in four
// ("unlinkat …/Default: directory not empty"). They all carry
// --user-data-dir=PROFILE on their command line, which is how they are
// found (the helpers rewrite their command line with spaces for NULs);
// a zombie (empty command line) no longer writes.
func waitBrowserGone(t *testing.T, profile string) {
	t.Helper()
	marker := []byte("--user-data-dir=" + profile)
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := profileProcs(marker)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("chromium processes %v still running 10s after the kill", left)
			return
		}
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond) // the kernel tears them down; nothing to block on for non-children
	}
}

// profileProcs lists the live processes whose command line holds marker.
func profileProcs(marker []byte) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && hasArg(b, marker) {
			out = append(out, pid)
		}
	}
	return out
}

// hasArg reports whether cmdline holds arg as a whole argument.
func hasArg(cmdline, arg []byte) bool {
	for i := 0; ; {
		j := bytes.Index(cmdline[i:], arg)
		if j < 0 {
			return false
		}
		end := i + j + len(arg)
		if end == len(cmdline) || cmdline[end] == 0 || cmdline[end] == ' ' {
			return true
		}
		i = end
	}
}
