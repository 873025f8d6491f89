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
