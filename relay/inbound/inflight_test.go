package inbound

import (
	"strings"
	"testing"
	"time"
)

func TestInFlightBudget(t *testing.T) {
	t.Parallel()
	f := NewInFlight(100)
	if !f.reserve(60) || !f.reserve(40) || f.reserve(1) {
		t.Fatalf("reserve: used %d", f.Used())
	}
	f.release(40)
	if !f.reserve(30) || f.Used() != 90 {
		t.Fatalf("after release: used %d", f.Used())
	}
	f.release(90)
	// A transaction larger than the whole budget still goes through an
	// empty one: it is not refused forever.
	if !f.reserve(500) || f.reserve(1) {
		t.Fatalf("oversized: used %d", f.Used())
	}
	var none *InFlight // no bound configured
	if !none.reserve(1<<40) || none.Used() != 0 {
		t.Fatal("nil budget refused")
	}
	none.release(5)
}

// waitUsed polls the budget until the server has processed a close; the
// deadline is a safety net against hangs.
func waitUsed(t *testing.T, f *InFlight, want int64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); f.Used() != want; {
		if time.Now().After(deadline) {
			t.Fatalf("in flight = %d, want %d", f.Used(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestInboundMaxInFlight: MAIL reserves the declared SIZE (else the
// maximum message size) across every listener sharing the budget; beyond
// it MAIL gets 452 4.3.1; the end of DATA, RSET and a closed connection
// give the reservation back.
func TestInboundMaxInFlight(t *testing.T) {
	t.Parallel()
	f := NewInFlight(4000)
	addr1, _, st := startServer(t, Options{InFlight: f, MaxMessageSize: 2000})
	addr2, _, _ := startServer(t, Options{InFlight: f, MaxMessageSize: 2000})

	a := dial(t, addr1)
	a.hello()
	a.cmd("MAIL FROM:<a@example.test> SIZE=1500", "250")
	b := dial(t, addr2)
	b.hello()
	b.cmd("MAIL FROM:<b@example.test>", "250") // no SIZE: 2000
	c := dial(t, addr1)
	c.hello()
	if r := c.cmd("MAIL FROM:<c@example.test> SIZE=600", "452"); !strings.HasPrefix(r, "452 4.3.1") {
		t.Fatalf("over budget: %q", r)
	}
	c.cmd("MAIL FROM:<c@example.test> SIZE=500", "250") // 4000 exactly
	if f.Used() != 4000 {
		t.Fatalf("used %d", f.Used())
	}

	// The end of DATA gives a's 1500 back.
	a.cmd("RCPT TO:<x@dest.test>", "250")
	a.cmd("DATA", "354")
	a.send(simpleMsg + ".\r\n")
	a.expect("250")
	waitUsed(t, f, 2500)
	// RSET gives b's back.
	b.cmd("RSET", "250")
	waitUsed(t, f, 500)
	// A connection closed mid-transaction gives c's back.
	c.cmd("QUIT", "221")
	waitUsed(t, f, 0)
	if len(st.all()) != 1 {
		t.Errorf("stored %d messages", len(st.all()))
	}
	// A 452 reserves nothing: the budget is whole again.
	d := dial(t, addr2)
	d.hello()
	d.cmd("MAIL FROM:<d@example.test> SIZE=1000", "250")
	waitUsed(t, f, 1000)
}
