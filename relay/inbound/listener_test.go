package inbound

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestListenerConnectionCaps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"total", Options{MaxConnections: 1}, "421 4.3.2"},
		{"per client", Options{MaxConnections: 10, PerClientConnections: 1}, "421 4.7.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, _, _ := startServer(t, tt.o)
			first := dial(t, addr)
			first.hello()
			second := dial(t, addr)
			second.expect(tt.want)
			second.expectClosed()
			// STARTTLS-free re-EHLO must not count as a new connection.
			first.cmd("EHLO again.test", "250")
			first.cmd("QUIT", "221")
			first.expectClosed()
			// The slot is released on close; wait for it by retrying a
			// dial until the server answers 220 (bounded by the conn
			// deadline inside dial, no sleeps).
			for i := 0; ; i++ {
				c := dial(t, addr)
				if r := c.reply(); strings.HasPrefix(r, "220") {
					break
				} else if i > 1000 {
					t.Fatalf("slot never released: %q", r)
				}
			}
		})
	}
}

func TestListenerIdleTimeout(t *testing.T) {
	t.Parallel()
	addr, _, _ := startServer(t, Options{IdleTimeout: 200 * time.Millisecond})
	c := dial(t, addr)
	c.hello()
	start := time.Now()
	c.expect("421 4.4.2 idle timeout")
	c.expectClosed()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("idle timeout took %v", d)
	}
}

func TestListenerDataTimeout(t *testing.T) {
	t.Parallel()
	addr, _, st := startServer(t, Options{DataTimeout: 200 * time.Millisecond, IdleTimeout: time.Minute})
	c := dial(t, addr)
	c.hello()
	c.cmd("MAIL FROM:<a@example.test>", "250")
	c.cmd("RCPT TO:<b@dest.test>", "250")
	c.cmd("DATA", "354")
	c.send("Subject: slow\r\n\r\npart")
	c.expect("421 4.4.2")
	c.expectClosed()
	if len(st.all()) != 0 {
		t.Fatal("partial message stored")
	}
}

func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	addr, s, st := startServer(t, Options{})
	idle := dial(t, addr)
	idle.hello()
	busy := dial(t, addr)
	busy.hello()
	busy.cmd("MAIL FROM:<a@example.test>", "250")
	busy.cmd("RCPT TO:<b@dest.test>", "250")
	busy.cmd("DATA", "354")
	busy.send("Subject: in flight\r\n\r\nfirst half\r\n")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	idle.expect("421 4.3.2")
	idle.expectClosed()
	// The upload in progress may finish, then the session is drained.
	busy.send("second half\r\n.\r\n")
	busy.expect("250")
	busy.expect("421 4.3.2")
	busy.expectClosed()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if len(st.all()) != 1 {
		t.Fatal("in-flight message lost")
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("still accepting after Shutdown")
	}
}

func TestShutdownDeadline(t *testing.T) {
	t.Parallel()
	addr, s, _ := startServer(t, Options{})
	busy := dial(t, addr)
	busy.hello()
	busy.cmd("MAIL FROM:<a@example.test>", "250")
	busy.cmd("RCPT TO:<b@dest.test>", "250")
	busy.cmd("DATA", "354")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v", err)
	}
	busy.expectClosed()
}

// NewSession runs again after STARTTLS; the caps live in the listener, so
// a session that upgrades still holds exactly one slot.
func TestListenerCapsSurviveSTARTTLS(t *testing.T) {
	t.Parallel()
	cfg, pool := testTLS(t)
	addr, _, _ := startServer(t, Options{TLSConfig: cfg, PerClientConnections: 1})
	first := dial(t, addr)
	first.hello()
	first.startTLS(pool)
	second := dial(t, addr)
	second.expect("421 4.7.0")
	second.expectClosed()
	if r := first.sendMessage("a@example.test", "b@dest.test", simpleMsg); !strings.HasPrefix(r, "250") {
		t.Fatal(r)
	}
}
