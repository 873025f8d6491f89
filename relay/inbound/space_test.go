package inbound

import (
	"fmt"
	"sync/atomic"
	"testing"

	"sluice/queue"
)

// TestInboundMailNoSpace: below the free-space reserve MAIL gets 452
// 4.3.1 before any upload, and a declared SIZE the disk cannot take now
// too (RFC 1870 §6.1); when space comes back, so does MAIL.
func TestInboundMailNoSpace(t *testing.T) {
	t.Parallel()
	var full atomic.Bool
	var asked atomic.Int64
	space := func(size int64) error {
		asked.Store(size)
		if full.Load() || size > 10000 {
			return fmt.Errorf("test: %w", queue.ErrNoSpace)
		}
		return nil
	}
	addr, _, st := startServer(t, Options{Space: space})
	c := dial(t, addr)
	c.hello()
	c.cmd("MAIL FROM:<a@example.test> SIZE=20000", "452 4.3.1")
	if asked.Load() != 20000 {
		t.Errorf("the check was asked about %d bytes, want the declared 20000", asked.Load())
	}
	c.cmd("MAIL FROM:<a@example.test> SIZE=5000", "250")
	c.cmd("RSET", "250")
	full.Store(true)
	c.cmd("MAIL FROM:<a@example.test>", "452 4.3.1")
	c.cmd("RCPT TO:<x@dest.test>", "503") // no transaction was opened
	full.Store(false)
	c.cmd("MAIL FROM:<a@example.test>", "250")
	c.cmd("RCPT TO:<x@dest.test>", "250")
	c.cmd("DATA", "354")
	c.send(simpleMsg + ".\r\n")
	c.expect("250")
	if len(st.all()) != 1 {
		t.Errorf("stored %d messages, want 1", len(st.all()))
	}
}
