package scheduler

import (
	"slices"
	"testing"
	"time"
)

// TestHeldRecipientIsNotTried (issue 11 item 3): a recipient policy holds
// back (a greylisted one waiting for its destination's window) is not
// tried: it goes back to the queue due when policy says, with no attempt
// counted, while the others of the destination go; at that time it goes.
func TestHeldRecipientIsNotTried(t *testing.T) {
	t.Parallel()
	r := newVRig(t, nil)
	t0 := r.clk.Now()
	until := t0.Add(time.Hour)
	r.pol.holds["held@dest.test"] = until
	r.q.add("app@src.test", "a@dest.test", t0)
	id := r.q.add("app@src.test", "held@dest.test", t0)
	r.q.add("app@src.test", "b@dest.test", t0)
	r.run()
	eventually(t, "the others", func() bool { return r.out.count("dest.test") >= 2 })
	r.settle()
	if got := r.out.delivered(); slices.Contains(got, "held@dest.test") {
		t.Fatalf("the held recipient was tried: %v", got)
	}
	r.q.mu.Lock()
	var found bool
	for _, it := range r.q.due["dest.test"] {
		if it.ID == id {
			found = true
			if !it.NextAttempt.Equal(until) || it.Attempts != 0 {
				t.Errorf("held recipient queued due %v with %d attempts, want due %v with none", it.NextAttempt, it.Attempts, until)
			}
		}
	}
	r.q.mu.Unlock()
	if !found {
		t.Fatal("the held recipient is not queued")
	}
	r.clk.Set(until)
	eventually(t, "the held recipient at its time", func() bool { return r.out.count("dest.test") == 3 })
}
