package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadNotifiesSystemd: with $NOTIFY_SOCKET set (systemd,
// Type=notify), a reload is announced with RELOADING=1 (carrying
// MONOTONIC_USEC, sd_notify(3)) and closed with READY=1, for an applied
// reload and for a refused one alike: the daemon runs either way (issue
// 12 item 2, the reload half).
func TestReloadNotifiesSystemd(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	smtp := freeAddr(t)
	cfg := writeConfig(t, dir, smtp, "")
	bin := buildTool(t, "sluice/cmd/sluice")
	logf, err := os.Create(filepath.Join(dir, "sluice.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
	})
	waitListening(t, smtp, 15*time.Second)

	// read returns the next datagram; untilReloading skips what comes
	// before a reload (the start-up READY=1 and STATUS lines).
	buf := make([]byte, 4096)
	read := func() string {
		t.Helper()
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := nc.Read(buf)
		if err != nil {
			t.Fatalf("no datagram: %v\n%s", err, relayLog(cfg))
		}
		return string(buf[:n])
	}
	untilReloading := func() string {
		t.Helper()
		for {
			if m := read(); strings.HasPrefix(m, "RELOADING=1") {
				return m
			}
		}
	}
	for _, bad := range []bool{false, true} {
		if bad {
			writeConfigRaw(t, cfg, readFile(t, cfg)+"\n[limits]\nmax_recipients = 0\n")
		}
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		m := untilReloading()
		if !strings.Contains(m, "\nMONOTONIC_USEC=") {
			t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", m)
		}
		for {
			m := read()
			if strings.HasPrefix(m, "STATUS=") {
				continue
			}
			if m != "READY=1" {
				t.Errorf("after RELOADING=1 (refused file: %v): %q, want READY=1", bad, m)
			}
			break
		}
	}
	if !strings.Contains(relayLog(cfg), "config reload refused") {
		t.Errorf("the refused reload is not in the log:\n%s", relayLog(cfg))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	<-done
}
