package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"sluice/admin"
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

	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox, // the tests run as root in a container
		chromedp.DisableGPU,
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
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
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
