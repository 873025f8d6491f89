package fakeclock

import (
	"testing"
	"time"
)

func TestClockMovesOnlyWhenTold(t *testing.T) {
	t.Parallel()
	c := New()
	if !c.Now().Equal(Start) {
		t.Fatalf("starts at %v", c.Now())
	}
	if got := c.Advance(time.Minute); !got.Equal(Start.Add(time.Minute)) || !c.Now().Equal(got) {
		t.Fatalf("Advance: %v, Now %v", got, c.Now())
	}
	at := Start.Add(time.Hour)
	c.Set(at)
	if !c.Now().Equal(at) {
		t.Fatalf("Set: %v", c.Now())
	}
}

// Timers fire when the clock passes them, in order, and never on their
// own; Stop and Reset work as time.Timer's.
func TestTimersFireOnlyWhenTimeMoves(t *testing.T) {
	t.Parallel()
	c := New()
	a := c.NewTimer(2 * time.Second)
	b := c.NewTimer(time.Second)
	stopped := c.NewTimer(time.Second)
	if !stopped.Stop() || stopped.Stop() {
		t.Error("Stop of an armed timer, then of a stopped one")
	}
	ran := make(chan time.Time, 1)
	c.AfterFunc(3*time.Second, func() { ran <- c.Now() })
	if at, ok := c.NextTimer(); !ok || !at.Equal(Start.Add(time.Second)) {
		t.Fatalf("NextTimer = %v, %v", at, ok)
	}
	select {
	case <-a.C():
		t.Fatal("fired before the time moved")
	case <-b.C():
		t.Fatal("fired before the time moved")
	default:
	}
	c.Advance(1500 * time.Millisecond)
	select {
	case <-b.C():
	default:
		t.Fatal("b did not fire at 1.5 s")
	}
	select {
	case <-a.C():
		t.Fatal("a fired at 1.5 s")
	case <-stopped.C():
		t.Fatal("a stopped timer fired")
	default:
	}
	a.Reset(time.Second) // now due at 2.5 s
	c.Advance(time.Second)
	select {
	case <-a.C():
	default:
		t.Fatal("a did not fire after its Reset")
	}
	armed := c.Armed()
	c.Advance(time.Second)
	if got := <-ran; !got.Equal(Start.Add(3500 * time.Millisecond)) {
		t.Errorf("AfterFunc ran at %v", got)
	}
	b.Reset(time.Second)
	select {
	case <-armed:
	default:
		t.Error("Armed not closed by a Reset")
	}
	b.Reset(0)
	select {
	case <-b.C():
	default:
		t.Error("Reset(0) did not fire at once")
	}
}

// TestResetWhileSetFires: a timer's owner may Reset it while Set is
// firing the timers due (a scheduler loop re-arming its wake-up while a
// test moves the clock). Set orders the due timers by the times it read
// under the lock, so under -race this is clean (it raced in the
// scheduler's idle tests: Set sorted by tm.at after unlocking).
func TestResetWhileSetFires(t *testing.T) {
	c := New()
	a, b := c.NewTimer(time.Millisecond), c.NewTimer(time.Millisecond)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2000 {
			a.Reset(time.Millisecond)
		}
	}()
	for range 2000 {
		b.Reset(time.Millisecond)
		c.Advance(time.Millisecond)
	}
	<-done
}
