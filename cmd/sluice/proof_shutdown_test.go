package main

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/admin"
	"sluice/internal/fakemx"
)

// stallingSink accepts the transaction up to the final dot and then never
// answers: a slow receiver that is mid-delivery when the relay stops.
type stallingSink struct {
	ln    net.Listener
	mu    sync.Mutex
	dots  int
	conns []net.Conn
}

func startStallingSink(t *testing.T) *stallingSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stallingSink{ln: ln}
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			go s.serve(c)
		}
	}()
	return s
}

func (s *stallingSink) serve(c net.Conn) {
	br := bufio.NewReader(c)
	say := func(l string) { c.Write([]byte(l + "\r\n")) }
	say("220 stall.test ESMTP")
	inData := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		if inData {
			if line == "." {
				s.mu.Lock()
				s.dots++
				s.mu.Unlock()
				inData = false // and no reply, ever
			}
			continue
		}
		switch strings.ToUpper(strings.SplitN(line, " ", 2)[0]) {
		case "EHLO":
			say("250 stall.test")
		case "DATA":
			say("354 go ahead")
			inData = true
		case "QUIT":
			say("221 bye")
			return
		default:
			say("250 2.0.0 ok")
		}
	}
}

func (s *stallingSink) finalDots() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dots
}

// TestProofShutdownIsNotTheReceiversFault is issue 9 item 3 through the
// binary: SIGTERM while a delivery waits for the receiver's reply to the
// final dot. After shutdown_grace the delivery is cut; the recipient is
// requeued without an attempt, and after a restart the destination is not
// paused (the old relay read the cut as "unavailable", persisted a pause
// and made the destination wait a full backoff step after every deploy).
func TestProofShutdownIsNotTheReceiversFault(t *testing.T) {
	t.Parallel()
	sink := startStallingSink(t)
	dir := t.TempDir()
	smtpAddr := freeAddr(t)
	cfg := writeAdminConfig(t, dir, smtpAddr, freeAddr(t), routeTo("dest.test", sink.ln.Addr().String()))
	writeConfigRaw(t, cfg, strings.Replace(readFile(t, cfg), `shutdown_grace = "5s"`, `shutdown_grace = "300ms"`, 1))
	relay := startRelay(t, cfg, smtpAddr)
	submit(t, smtpAddr, 1, "user@dest.test")
	eventually(t, 10*time.Second, "the delivery waiting for the final reply", func() bool { return sink.finalDots() == 1 })

	relay.stop(t)
	log := relayLog(cfg)
	if !strings.Contains(log, "requeued at shutdown") {
		t.Errorf("no requeue at shutdown in the log:\n%s", log)
	}
	if strings.Contains(log, "status=deferred") {
		t.Errorf("the cut was logged as a deferral:\n%s", log)
	}

	startRelay(t, cfg, smtpAddr)
	var doms admin.Domains
	cliJSON(t, &doms, "domains", "--config", cfg)
	if d, ok := findDest(doms, "dest.test"); ok && (d.State != "open" || d.PausedUntil != nil || d.LastHour["unavailable"] > 0) {
		t.Errorf("after a restart the destination carries our shutdown: %+v", d)
	}
	var msgs []admin.Message
	cliJSON(t, &msgs, "queue", "list", "--config", cfg)
	if len(msgs) != 1 {
		t.Fatalf("queue list: %+v", msgs)
	}
	var m admin.Message
	cliJSON(t, &m, "queue", "show", msgs[0].ID, "--config", cfg)
	if r := m.Recipients[0]; r.Attempts != 0 || len(r.History) != 0 || r.LastClass != "" {
		t.Errorf("recipient after the cut: %+v, want no attempt counted", r)
	}
}

// TestProofConnectionIdleReusesTheConnection: delivery.connection_idle is
// used (issue 9 item 24): mail submitted after the first message went out
// takes the connection that waited for it, and a stop does not wait for
// the idle time.
func TestProofConnectionIdleReusesTheConnection(t *testing.T) {
	t.Parallel()
	mx := startFakeMX(t, fakemx.Options{})
	dir := t.TempDir()
	smtpAddr := freeAddr(t)
	cfg := writeConfig(t, dir, smtpAddr, routeTo("dest.test", mx.Addr()))
	writeConfigRaw(t, cfg, readFile(t, cfg)+"\n[delivery]\nconnection_idle = \"5m\"\n")
	relay := startRelay(t, cfg, smtpAddr)
	for i := 1; i <= 2; i++ {
		submit(t, smtpAddr, 1, fmt.Sprintf("user%d@dest.test", i))
		eventually(t, 10*time.Second, "delivery", func() bool { return mx.Stats().Delivered == i })
	}
	if st := mx.Stats(); st.Sessions != 1 {
		t.Errorf("%d connections for two messages a moment apart: want 1, kept idle", st.Sessions)
	}
	start := time.Now()
	relay.stop(t)
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("stop took %v with an idle connection", d)
	}
}
