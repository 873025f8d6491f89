package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/admin"
)

// gatedMX is a minimal SMTP receiver that holds every transaction at the
// final dot until its gate opens, so that a test knows deliveries are in
// flight. It counts the 250s it gave per Message-ID.
type gatedMX struct {
	l    net.Listener
	gate chan struct{}

	mu      sync.Mutex
	waiting int
	got     map[string]int
}

func startGatedMX(t *testing.T) *gatedMX {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &gatedMX{l: l, gate: make(chan struct{}), got: map[string]int{}}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go m.serve(c)
		}
	}()
	return m
}

var gatedMsgID = regexp.MustCompile(`(?i)^Message-ID:\s*(<[^>]+>)`)

func (m *gatedMX) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(s string) { fmt.Fprintf(c, "%s\r\n", s) }
	say("220 gated.test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		switch verb {
		case "EHLO", "HELO", "MAIL", "RCPT", "RSET", "NOOP":
			say("250 ok")
		case "QUIT":
			say("221 bye")
			return
		case "DATA":
			say("354 go on")
			id := ""
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				if s := gatedMsgID.FindStringSubmatch(strings.TrimRight(l, "\r\n")); s != nil && id == "" {
					id = s[1]
				}
			}
			m.mu.Lock()
			m.waiting++
			m.mu.Unlock()
			<-m.gate
			m.mu.Lock()
			m.got[id]++
			m.mu.Unlock()
			say("250 2.0.0 ok")
		default:
			say("500 5.5.1 what")
		}
	}
}

func (m *gatedMX) inFlight() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.waiting
}

func (m *gatedMX) received() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int, len(m.got))
	for k, v := range m.got {
		out[k] = v
	}
	return out
}

// relayQueue reads the queue counters of a running relay through
// `sluice status --json`, whatever its readiness.
func relayQueue(t *testing.T, cfg string) map[string]int {
	t.Helper()
	out, _ := cli(t, "status", "--config", cfg, "--json")
	var st admin.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st.Queue
}

// TestProofOutcomeCommitFailure (issue 9 item 2): outcomes whose commit
// fails while deliveries are in flight (fdatasync EIO on the queue file
// for a while) are retried until they commit. Nothing stays active, and
// the receiver gets every message once.
func TestProofOutcomeCommitFailure(t *testing.T) {
	strace := needTool(t, "strace")
	if out, err := exec.Command(strace, "-f", "-o", "/dev/null", "-e", "inject=fdatasync:error=EIO", "true").CombinedOutput(); err != nil {
		t.Skipf("strace cannot inject here: %v: %s", err, out)
	}
	const n = 5
	dir := t.TempDir()
	mx := startGatedMX(t)
	smtp := freeAddr(t)
	cfg := filepath.Join(dir, "sluice.toml")
	writeConfigRaw(t, cfg, fmt.Sprintf(`hostname = "sluice.test"
data_dir = "data"
shutdown_grace = "5s"

[listen]
smtp = %q
http = ""

[policy]
retry_base = "1s"
retry_max = "2s"
initial_concurrency = 10

[auth]
mode = "off"
%s`, smtp, routeTo("dest.test", mx.l.Addr().String())))
	r := startRelay(t, cfg, smtp)
	for i := range n {
		if got := submitOnce(t, smtp, "user@dest.test", fmt.Sprintf("lease-%d@proof.test", i), 1024); !strings.HasPrefix(got, "250") {
			t.Fatalf("submission %d: %q", i, got)
		}
	}
	// Sessions start as mail arrives; a few are enough.
	eventually(t, 15*time.Second, "deliveries in flight at the receiver", func() bool { return mx.inFlight() >= 2 })
	k := mx.inFlight()

	// Every fsync of the queue file fails from now on; the receiver
	// accepts every message: each outcome's commit fails.
	db := filepath.Join(dir, "data", "queue.db")
	detach := straceAttach(t, strace, r, "-P", db, "-e", "trace=fdatasync,fsync", "-e", "inject=fdatasync,fsync:error=EIO")
	close(mx.gate)
	eventually(t, 15*time.Second, "the outcome commits to fail", func() bool {
		return strings.Count(relayLog(cfg), "recording delivery outcome failed") >= k
	})
	// The fault lasts a while: the retries back off and fail again.
	time.Sleep(1500 * time.Millisecond)
	t.Logf("during the fault: %d deliveries were in flight; queue %v", k, relayQueue(t, cfg))
	detach()

	eventually(t, 20*time.Second, "every recipient recorded as sent, none left active", func() bool {
		q := relayQueue(t, cfg)
		return q["sent"] == n && q["active"] == 0 && q["queued"] == 0
	})
	got := mx.received()
	for i := range n {
		id := fmt.Sprintf("<lease-%d@proof.test>", i)
		if got[id] != 1 {
			t.Errorf("%s delivered %d times, want once", id, got[id])
		}
	}
	r.stop(t)
	if b, err := os.ReadFile(filepath.Join(dir, "sluice.log")); err == nil && !strings.Contains(string(b), "delivery outcome recorded after retrying") {
		t.Errorf("no outcome was recorded after a retry:\n%s", b)
	}
}
