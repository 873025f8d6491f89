package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/admin"
	"sluice/internal/fakemx"
)

// writeAdminConfig is writeConfig with the HTTP listener on: the operator
// surface needs it.
func writeAdminConfig(t *testing.T, dir, smtpAddr, httpAddr, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`hostname = "sluice.test"
data_dir = "data"
shutdown_grace = "5s"

[listen]
smtp = %q
http = %q

[policy]
retry_base = "1s"
retry_max = "2s"
greylist_default = "2s"

[auth]
mode = "off"
%s
`, smtpAddr, httpAddr, extra)
	p := filepath.Join(dir, "sluice.toml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// cli runs the built sluice binary and returns stdout and the exit code.
func cli(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(buildTool(t, "sluice/cmd/sluice"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String() + errb.String(), ee.ExitCode()
	}
	t.Fatalf("sluice %v: %v", args, err)
	return "", -1
}

func cliJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out, code := cli(t, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("sluice %v: exit %d\n%s", args, code, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("sluice %v: %v\n%s", args, err, out)
	}
}

func submit(t *testing.T, smtpAddr string, n int, to string) {
	t.Helper()
	for i := range n {
		msg := fmt.Sprintf("From: app@src.test\r\nTo: %s\r\nSubject: %d\r\nMessage-ID: <op-%d@src.test>\r\n\r\nhello\r\n", to, i, i)
		if err := smtp.SendMail(smtpAddr, nil, "app@src.test", []string{to}, []byte(msg)); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
}

func findDest(d admin.Domains, name string) (admin.Destination, bool) {
	for _, x := range d.Destinations {
		if x.Name == name {
			return x, true
		}
	}
	return admin.Destination{}, false
}

// TestE2EOperatorSurface runs the daemon against a fake MX that refuses
// with 421 for its first seconds, then checks what an operator sees
// (domains, queue summary, queue show), that a flush respects the pause,
// and that `limits set` takes effect at once and survives a restart.
func TestE2EOperatorSurface(t *testing.T) {
	const n = 8
	mx, err := fakemx.Start(fakemx.Options{Addr: "127.0.0.1:0", Outages: []fakemx.Window{{Start: 0, End: 6 * time.Second}}, Logger: quietTestLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer mx.Close()
	dir := t.TempDir()
	smtpAddr := freeAddr(t)
	cfg := writeAdminConfig(t, dir, smtpAddr, freeAddr(t), routeTo("dest.test", mx.Addr()))
	relay := startRelay(t, cfg, smtpAddr)

	out, code := cli(t, "status", "--config", cfg)
	if code != 0 || !strings.Contains(out, "up, ready") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	// The version names the revision the binary was built from (stamped
	// as build.sh stamps a release), not "(devel)".
	if rev, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		if want := "(rev " + strings.TrimSpace(string(rev)); !strings.Contains(out, want) || strings.Contains(out, "(devel)") {
			t.Errorf("status does not give the revision %q:\n%s", want, out)
		}
	}
	submit(t, smtpAddr, n, "user@dest.test")

	// The outage: 421 at greeting pauses the destination; mail waits.
	var doms admin.Domains
	eventually(t, 10*time.Second, "dest.test paused with 421s counted", func() bool {
		cliJSON(t, &doms, "domains", "--config", cfg)
		d, ok := findDest(doms, "dest.test")
		return ok && d.Replies421 > 0 && d.LastHour["unavailable"] > 0
	})
	out, _ = cli(t, "domains", "--config", cfg)
	if !strings.Contains(out, "dest.test") || !strings.Contains(out, "421 4.3.2 Service not available") {
		t.Errorf("domains table:\n%s", out)
	}
	var sum admin.Summary
	cliJSON(t, &sum, "queue", "summary", "--config", cfg)
	if len(sum.Rows) != 1 || sum.Rows[0].Domain != "dest.test" || sum.Rows[0].Total != n || sum.Rows[0].Counts[0] != n {
		t.Fatalf("summary = %+v", sum)
	}
	if out, _ := cli(t, "queue", "summary", "--config", cfg); !strings.Contains(out, "dest.test") {
		t.Errorf("summary table:\n%s", out)
	}
	var msgs []admin.Message
	cliJSON(t, &msgs, "queue", "list", "--domain", "dest.test", "--config", cfg)
	if len(msgs) != n {
		t.Fatalf("queue list: %d messages", len(msgs))
	}
	eventually(t, 10*time.Second, "an attempt in the history", func() bool {
		var m admin.Message
		cliJSON(t, &m, "queue", "show", msgs[0].ID, "--config", cfg)
		return len(m.Recipients[0].History) > 0 && m.Recipients[0].History[0].Class == "unavailable"
	})
	if d, _ := findDest(doms, "dest.test"); d.State == "paused" {
		if out, code := cli(t, "queue", "flush", "--domain", "dest.test", "--config", cfg); code != 1 || !strings.Contains(out, "--force") {
			t.Errorf("flush of a paused destination: exit %d\n%s", code, out)
		}
	}

	// limits set takes effect at once: after the outage the relay never
	// opens more than one session.
	var d admin.Destination
	cliJSON(t, &d, "limits", "set", "dest.test", "--max-concurrency", "1", "--rate", "20/s", "--config", cfg)
	if d.MaxConcurrency != 1 || d.Concurrency != 1 || d.MaxRate != 20 {
		t.Fatalf("limits set = %+v", d)
	}
	eventually(t, 30*time.Second, "delivery after the outage", func() bool { return mx.Stats().Delivered == n })
	if st := mx.Stats(); st.MaxConcurrent != 1 {
		t.Errorf("fake MX saw %d concurrent sessions after limits set to 1", st.MaxConcurrent)
	}
	// The receiver counts a delivery when it sends its 250; the relay
	// records it just after.
	eventually(t, 10*time.Second, "an empty queue after delivery", func() bool {
		cliJSON(t, &sum, "queue", "summary", "--config", cfg)
		return sum.Total.Total == 0
	})

	// The limits persist across a restart.
	relay.stop(t)
	if _, code := cli(t, "status", "--config", cfg); code != 1 {
		t.Errorf("status with the daemon stopped: exit %d, want 1", code)
	}
	startRelay(t, cfg, smtpAddr)
	var dd admin.DomainDetail
	eventually(t, 10*time.Second, "admin socket after restart", func() bool {
		_, code := cli(t, "status", "--config", cfg)
		return code == 0
	})
	cliJSON(t, &dd, "domains", "show", "dest.test", "--config", cfg)
	if dd.Destination.MaxConcurrency != 1 || dd.Destination.MaxRate != 20 {
		t.Fatalf("after restart: %+v", dd.Destination)
	}
	cliJSON(t, &d, "limits", "reset", "dest.test", "--config", cfg)
	if d.MaxConcurrency == 1 {
		t.Errorf("limits reset kept max 1: %+v", d)
	}
}

func quietTestLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestE2EFlushForceResumesAtOnce (issue 10): `queue flush --force` ends a
// destination's pause in policy, and the scheduler, which holds a paused
// destination back until the pause's end without looking at it, asks
// again at once: the mail goes now, not when the minute-long pause would
// have ended.
func TestE2EFlushForceResumesAtOnce(t *testing.T) {
	const n = 3
	dir := t.TempDir()
	smtpAddr, mxAddr := freeAddr(t), freeAddr(t)
	cfg := writeAdminConfig(t, dir, smtpAddr, freeAddr(t), routeTo("dest.test", mxAddr))
	// A pause of a minute and more (retry_base), far beyond the test.
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(strings.Replace(string(b), `retry_base = "1s"`, `retry_base = "1m"`, 1), `retry_max = "2s"`, `retry_max = "1h"`, 1))
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	startRelay(t, cfg, smtpAddr)
	// The receiver starts with the relay up: its outage (421 at the
	// greeting) covers the first attempt.
	started := time.Now()
	mx, err := fakemx.Start(fakemx.Options{Addr: mxAddr, Outages: []fakemx.Window{{Start: 0, End: 2 * time.Second}}, Logger: quietTestLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer mx.Close()
	submit(t, smtpAddr, n, "user@dest.test")
	var doms admin.Domains
	eventually(t, 10*time.Second, "dest.test paused by the outage", func() bool {
		cliJSON(t, &doms, "domains", "--config", cfg)
		d, ok := findDest(doms, "dest.test")
		return ok && d.State == "paused"
	})
	eventually(t, 5*time.Second, "the fake MX's outage to end", func() bool { return time.Since(started) > 2*time.Second })
	if out, code := cli(t, "queue", "flush", "--domain", "dest.test", "--force", "--config", cfg); code != 0 {
		t.Fatalf("flush --force: exit %d\n%s", code, out)
	}
	eventually(t, 10*time.Second, "delivery right after the flush", func() bool { return mx.Stats().Delivered == n })
}
