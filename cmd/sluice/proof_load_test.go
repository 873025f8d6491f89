package main

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The load-limit proof (issue 6, part 5): 2,000 clients at once against
// max_connections = 500. Each one beyond the cap gets a clear 421 at
// once (RFC 5321 §3.8 lets a server refuse service with 421 at
// greeting), none hangs or is reset, and the daemon serves normally
// afterwards. The clients come from 127.0.0.2 to 127.0.0.60 so that the
// per-client cap (50) does not stop them before the global one.

func raiseNoFile(t *testing.T, want uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= want {
		return
	}
	lim.Cur = min(want, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < want {
		t.Skipf("RLIMIT_NOFILE is %d, need %d: %v", lim.Cur, want, err)
	}
}

func TestProofConnectionFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	// The relay inherits the limit: 2,000 sockets each side, and spare.
	raiseNoFile(t, 8192)
	snk := startSink(t)
	dir := t.TempDir()
	smtp := freeAddr(t)
	cfg := writeConfig(t, dir, smtp, routeTo("dest.test", snk.addr)+
		"\n[limits]\nmax_connections = 500\nper_client_connections = 50\nidle_timeout = \"60s\"\n")
	r := startRelay(t, cfg, smtp)

	const clients = 2000
	type result struct {
		conn  net.Conn
		reply string
		err   error
	}
	results := make([]result, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := fmt.Sprintf("127.0.0.%d", 2+i%59)
			d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
			c, err := d.Dial("tcp", smtp)
			if err != nil {
				results[i].err = err
				return
			}
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			l, err := bufio.NewReader(c).ReadString('\n')
			results[i] = result{conn: c, reply: strings.TrimSpace(l), err: err}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	counts := map[string]int{}
	var other []string
	for _, res := range results {
		switch {
		case res.err != nil:
			other = append(other, res.err.Error())
		case strings.HasPrefix(res.reply, "220"):
			counts["220"]++
		case strings.HasPrefix(res.reply, "421"):
			counts["421"]++
		default:
			other = append(other, res.reply)
		}
	}
	peak := peakRSS(r.cmd.Process.Pid)
	_, fds := procStat(r.cmd.Process.Pid)
	t.Logf("%d clients in %v: %d got 220, %d got 421, %d other; relay peak RSS %d kB, %d fds open",
		clients, elapsed.Round(time.Millisecond), counts["220"], counts["421"], len(other), peak, fds)
	if len(other) > 0 {
		t.Errorf("%d clients got neither 220 nor 421, e.g. %q", len(other), other[:min(5, len(other))])
	}
	if counts["220"] > 500 {
		t.Errorf("%d sessions served at once, max_connections is 500", counts["220"])
	}
	if counts["220"] < 450 {
		t.Errorf("only %d sessions served: the cap is 500", counts["220"])
	}
	for _, res := range results {
		if strings.HasPrefix(res.reply, "421") {
			if !strings.Contains(res.reply, "4.") {
				t.Errorf("421 without an enhanced code: %q", res.reply)
			}
			break
		}
	}
	for _, res := range results {
		if res.conn != nil {
			res.conn.Close()
		}
	}

	// Healthy afterwards: the slots come back and mail flows.
	eventually(t, 10*time.Second, "a 250 after the flood", func() bool {
		return strings.HasPrefix(submitOnce(t, smtp, "user@dest.test", "after-flood@proof.test", 1024), "250")
	})
	eventually(t, 15*time.Second, "delivery after the flood", func() bool {
		return snk.messageIDs(t)["<after-flood@proof.test>"] >= 1
	})
	if out := relayLog(cfg); strings.Contains(out, "panic") {
		t.Errorf("panic in the relay log")
	}
	r.stop(t)
}
