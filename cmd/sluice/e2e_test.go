package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2ESwaksThroughRouteToSink: swaks submits, sluice queues and
// delivers through a route to smtp-sink; the mail log has one line.
func TestE2ESwaksThroughRouteToSink(t *testing.T) {
	snk := startSink(t)
	dir := t.TempDir()
	smtp := freeAddr(t)
	cfg := writeConfig(t, dir, smtp, routeTo("dest.test", snk.addr))
	startRelay(t, cfg, smtp)

	out, err := swaks(t, "--server", smtp, "--from", "app@src.test", "--to", "user@dest.test",
		"--header", "Message-Id: <e2e-swaks-1@sluice.test>", "--helo", "client.test")
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	if !strings.Contains(out, "queued as") {
		t.Fatalf("no 250 in swaks transcript:\n%s", out)
	}
	eventually(t, 15*time.Second, "delivery to smtp-sink", func() bool {
		return snk.messageIDs(t)["<e2e-swaks-1@sluice.test>"] == 1
	})
	eventually(t, 5*time.Second, "the mail-log line", func() bool {
		return strings.Contains(relayLog(cfg), "status=sent")
	})
	log := relayLog(cfg)
	for _, key := range []string{"id=", "to=user@dest.test", "relay=", "delay=", "attempt=1", "dsn=2.0.0"} {
		if !strings.Contains(log, key) {
			t.Errorf("mail log lacks %q:\n%s", key, log)
		}
	}
}

// TestE2ERelayDeniedOutsideNetworks: a client outside access.networks
// gets 530 at MAIL (the relay is never open).
func TestE2ERelayDeniedOutsideNetworks(t *testing.T) {
	dir := t.TempDir()
	smtp := freeAddr(t)
	cfg := writeConfig(t, dir, smtp, "\n[access]\nnetworks = [\"192.0.2.0/24\"]\n")
	startRelay(t, cfg, smtp)
	out, err := swaks(t, "--server", smtp, "--from", "a@src.test", "--to", "b@dest.test", "--quit-after", "MAIL")
	if err == nil || !strings.Contains(out, "530 5.7.0") {
		t.Fatalf("want 530 5.7.0 at MAIL, got err=%v\n%s", err, out)
	}
}

// TestE2ERestartDeliversQueuedMail: mail queued while the next hop is down
// survives a clean restart and is delivered once the hop is up.
func TestE2ERestartDeliversQueuedMail(t *testing.T) {
	dir := t.TempDir()
	smtp := freeAddr(t)
	sinkAddr := freeAddr(t) // nothing listens yet
	cfg := writeConfig(t, dir, smtp, routeTo("dest.test", sinkAddr))
	r := startRelay(t, cfg, smtp)
	for i := range 5 {
		out, err := swaks(t, "--server", smtp, "--from", "app@src.test", "--to", "user@dest.test",
			"--header", fmt.Sprintf("Message-Id: <restart-%d@sluice.test>", i))
		if err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
	}
	eventually(t, 10*time.Second, "a deferred attempt", func() bool {
		return strings.Contains(relayLog(cfg), "status=deferred")
	})
	r.stop(t)

	snk := startSinkAt(t, sinkAddr)
	startRelay(t, cfg, smtp)
	eventually(t, 20*time.Second, "all 5 messages at the sink", func() bool {
		return len(snk.messageIDs(t)) == 5
	})
}

// TestE2EKill9DuringInjection: every message that got 250 reaches the sink
// after a kill -9 in the middle of a 2,000-message injection and a restart.
func TestE2EKill9DuringInjection(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	snk := startSink(t)
	dir := t.TempDir()
	smtp := freeAddr(t)
	cfg := writeConfig(t, dir, smtp, routeTo("dest.test", snk.addr))
	r := startRelay(t, cfg, smtp)

	inj := buildTool(t, "sluice/cmd/sluice-inject")
	acked := filepath.Join(dir, "acked.txt")
	cmd := exec.Command(inj, "-addr", smtp, "-n", "2000", "-c", "20", "-size", "2048",
		"-from", "app@src.test", "-to", "user%d@dest.test", "-acked", acked, "-deadline", "60s")
	var injOut strings.Builder
	cmd.Stdout, cmd.Stderr = &injOut, &injOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "500 acknowledged messages", func() bool { return len(readLines(acked)) >= 500 })
	r.kill()
	t.Logf("killed with %d acknowledged", len(readLines(acked)))
	startRelay(t, cfg, smtp)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("injector: %v\n%s", err, injOut.String())
	}
	ack := readLines(acked)
	t.Logf("injector: %s; acked %d", strings.TrimSpace(injOut.String()), len(ack))
	want := map[string]bool{}
	for _, id := range ack {
		want[id] = true
	}
	var lost []string
	eventually(t, 60*time.Second, "every acknowledged message at the sink", func() bool {
		got := snk.messageIDs(t)
		lost = lost[:0]
		for id := range want {
			if got[id] == 0 {
				lost = append(lost, id)
			}
		}
		return len(lost) == 0
	})
	dups := 0
	for _, n := range snk.messageIDs(t) {
		if n > 1 {
			dups += n - 1
		}
	}
	t.Logf("acknowledged %d, lost 0, duplicates %d", len(want), dups)
}

func startSinkAt(t *testing.T, addr string) *sink {
	t.Helper()
	bin := needTool(t, "smtp-sink")
	dir := filepath.Join(t.TempDir(), "sink")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	args := []string{"-d", dir + "/%H%M%S.", addr, "1000"}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "root"}, args...)
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitListening(t, addr, 5*time.Second)
	return &sink{addr: addr, dir: dir, cmd: cmd}
}

// TestE2ESecondServeFailsClearly: the bbolt lock keeps a second daemon off
// the same data_dir, with a message that says so.
func TestE2ESecondServeFailsClearly(t *testing.T) {
	dir := t.TempDir()
	smtp := freeAddr(t)
	cfg := writeConfig(t, dir, smtp, "")
	startRelay(t, cfg, smtp)
	bin := buildTool(t, "sluice/cmd/sluice")
	out, err := exec.Command(bin, "serve", "--config", cfg).CombinedOutput()
	if err == nil {
		t.Fatalf("second serve started:\n%s", out)
	}
	if !strings.Contains(string(out), "is another sluice serve running") {
		t.Fatalf("unclear message:\n%s", out)
	}
}

// TestE2EConfigErrorsNameKeyAndLine: unknown keys and bad values stop the
// relay with the file, line and key, and a non-zero exit.
func TestE2EConfigErrorsNameKeyAndLine(t *testing.T) {
	bin := buildTool(t, "sluice/cmd/sluice")
	dir := t.TempDir()
	for _, tc := range []struct{ body, want string }{
		{"hostname = \"x.test\"\n[listen]\nsmpt = \"127.0.0.1:1\"\n", ":3:"},
		{"[policy]\nretry_base = \"1x\"\n", "policy.retry_base"},
	} {
		p := filepath.Join(dir, "bad.toml")
		os.WriteFile(p, []byte(tc.body), 0o644)
		for _, args := range [][]string{{"config", "check", p}, {"serve", "--config", p}} {
			out, err := exec.Command(bin, args...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Errorf("%v: err=%v, want message with %q:\n%s", args, err, tc.want, out)
			}
		}
	}
}
