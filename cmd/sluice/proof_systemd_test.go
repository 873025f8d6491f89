package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notifySocket is a stand-in for systemd's end of $NOTIFY_SOCKET: a
// unixgram socket whose datagrams arrive on msgs, one per sd_notify call.
type notifySocket struct {
	path string
	msgs chan string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	// sun_path holds 108 bytes: t.TempDir() can be longer.
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ns := &notifySocket{path: filepath.Join(dir, "notify"), msgs: make(chan string, 1024)}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				close(ns.msgs)
				return
			}
			ns.msgs <- string(buf[:n])
		}
	}()
	return ns
}

// next returns the next datagram that is not a STATUS= line.
func (ns *notifySocket) next(t *testing.T, within time.Duration) string {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m := <-ns.msgs:
			if strings.HasPrefix(m, "STATUS=") {
				continue
			}
			return m
		case <-deadline:
			t.Fatalf("no sd_notify message within %v", within)
			return ""
		}
	}
}

// TestProofSystemdNotify: run as systemd runs a Type=notify unit
// ($NOTIFY_SOCKET, $WATCHDOG_USEC), the binary sends READY=1 once SMTP
// answers (the test connects the moment READY=1 arrives, without a retry,
// and gets the 220 greeting), WATCHDOG=1 every half of $WATCHDOG_USEC
// while it runs, and STOPPING=1 at SIGTERM before it exits cleanly.
func TestProofSystemdNotify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeConfig(t, dir, addr, "")
	ns := listenNotify(t)
	bin := buildTool(t, "sluice/cmd/sluice")
	logf, err := os.Create(filepath.Join(dir, "sluice.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "serve", "--config", cfg)
	const watchdogUsec = 400_000 // WATCHDOG=1 every 200 ms
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+ns.path, "WATCHDOG_USEC=400000")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var exitErr error
	exited := make(chan struct{})
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	})

	if m := ns.next(t, 15*time.Second); m != "READY=1" {
		t.Fatalf("first message %q, want READY=1", m)
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("READY=1 sent but SMTP does not accept: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	greeting, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if !strings.HasPrefix(greeting, "220 ") {
		t.Fatalf("READY=1 sent but the greeting is %q (%v)", greeting, err)
	}
	t.Logf("READY=1 %v after exec", time.Since(start).Round(time.Millisecond))

	// The watchdog: three feeds, each about 200 ms apart.
	var at []time.Time
	for len(at) < 3 {
		if m := ns.next(t, 2*time.Second); m != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", m)
		}
		at = append(at, time.Now())
	}
	if gap := at[2].Sub(at[0]) / 2; gap < 100*time.Millisecond || gap > time.Second {
		t.Errorf("watchdog every %v, want about %v", gap, watchdogUsec*time.Microsecond/2)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	for {
		m := ns.next(t, 10*time.Second)
		if m == "WATCHDOG=1" {
			continue // one may have been on its way
		}
		if m != "STOPPING=1" {
			t.Fatalf("after SIGTERM got %q, want STOPPING=1", m)
		}
		break
	}
	select {
	case <-exited:
		if exitErr != nil {
			t.Fatalf("exit after SIGTERM: %v", exitErr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit within 20 s of SIGTERM")
	}
	for m := range drain(ns.msgs) {
		if m == "WATCHDOG=1" {
			t.Errorf("WATCHDOG=1 after STOPPING=1")
		}
	}
	if log := readFile(t, filepath.Join(dir, "sluice.log")); !strings.Contains(log, "systemd: watchdog on") {
		t.Errorf("log does not say the watchdog is on:\n%s", log)
	}
}

// drain returns what is buffered on ch without waiting.
func drain(ch chan string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for {
			select {
			case m, ok := <-ch:
				if !ok || !yield(m) {
					return
				}
			default:
				return
			}
		}
	}
}
