package scheduler

import (
	"testing"
	"time"

	"sluice/queue"
)

// TestReconfigureAppliesAtNextUse: a reload's delivery settings take
// effect at their next use, without cutting a session: here a lower
// max_messages_per_connection makes the next message dial afresh.
func TestReconfigureAppliesAtNextUse(t *testing.T) {
	t.Parallel()
	out := &scriptOutbound{}
	r := newScriptRig(t, out, func(o *Options) { o.ConnectionIdle, o.MaxPerConnection = time.Hour, 100 })
	m1 := r.enqueue("app@src.test", "a@dest.test")
	eventually(t, "the first delivery", func() bool { return r.state(m1).State == queue.StateSent })
	r.idle("dest.test")

	st := r.sched.settings()
	next := *st
	next.MaxPerConnection = 1
	if err := r.sched.Reconfigure(next); err != nil {
		t.Fatal(err)
	}
	m2 := r.enqueue("app@src.test", "b@dest.test")
	eventually(t, "the second delivery", func() bool { return r.state(m2).State == queue.StateSent })
	if n := out.dialCount(); n != 2 {
		t.Errorf("%d dials, want 2: one message per connection after the reload", n)
	}
	bad := next
	bad.MaxQueueLifetime = 0
	if err := r.sched.Reconfigure(bad); err == nil {
		t.Error("a zero queue lifetime accepted")
	}
	if got := r.sched.settings().MaxPerConnection; got != 1 {
		t.Errorf("a refused reload changed the settings: %d", got)
	}
}
