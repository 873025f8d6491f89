package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"sluice/admin/timeline"
	"sluice/policy"
	"sluice/reply"
	"sluice/scheduler"
)

// TestTimelineShowsTheControlLoop: attempts reported by the scheduler and
// the policy's readings reach the dashboard's per-destination chart. A
// 421 that pauses the destination shows as a mark in its step, the pause
// as a band from that moment to the policy's end of the pause (read at
// once, not at the next step), and the cut of the concurrency limit in
// the same step; the step readings of RunTimeline, on the injected
// clock, carry the limits on.
func TestTimelineShowsTheControlLoop(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.clk.Set(t0) // on a step boundary
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	armed := f.clk.Armed()
	done := make(chan struct{})
	go func() { f.tel.RunTimeline(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	<-armed // the first reading is done; the next is due at t0+10s

	// A successful delivery opens dest.test in the policy, then it is
	// throttled: the 421 closes the session and pauses it.
	ok := reply.Reply{Stage: reply.StageDataEnd, Code: 250, Text: "ok"}
	f.pol.Observe("dest.test", policy.Outcome{Reply: ok, Rcpt: "a@dest.test", Attempts: 1, Queued: f.clk.Now()})
	f.tel.OnAttempt(scheduler.Attempt{Dest: "dest.test", Domain: "dest.test", Class: policy.ClassSuccess, Status: "sent", Reply: ok, First: true})
	before, _ := f.pol.State("dest.test")
	f.clk.Advance(3 * time.Second)
	throttle := reply.Reply{Stage: reply.StageGreeting, Code: 421, Enhanced: "4.7.0", Text: "too many connections from your IP"}
	f.pol.Observe("dest.test", policy.Outcome{Reply: throttle, Rcpt: "b@dest.test", Attempts: 1, Queued: f.clk.Now()})
	f.tel.OnAttempt(scheduler.Attempt{Dest: "dest.test", Domain: "dest.test", Class: policy.ClassThrottle, Status: "deferred", Reply: throttle, First: true})
	after, _ := f.pol.State("dest.test")
	if after.State != policy.StatePaused || after.Concurrency >= before.Concurrency && before.Concurrency > 1 {
		t.Fatalf("test setup: the 421 did not pause and cut dest.test: %+v -> %+v", before, after)
	}

	// The next step reading.
	armed = f.clk.Armed()
	f.clk.Set(t0.Add(timeline.Step))
	<-armed

	var d Dashboard
	if err := json.Unmarshal(httptestGet(t, f.srv.HTTPHandler("127.0.0.1:8025"), "/v1/dashboard").Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	tl := d.Timeline
	if tl.StepSeconds != 10 || tl.Points != 360 || len(tl.Destinations) != 1 {
		t.Fatalf("timeline: step %d, %d points, %d destinations", tl.StepSeconds, tl.Points, len(tl.Destinations))
	}
	s := tl.Destinations[0]
	i := tl.Points - 2 // the step of t0
	if s.Destination != "dest.test" || s.Sent[i] != 1 || s.Replies421[i] != 1 || s.Messages[i] != 2 {
		t.Fatalf("step of t0: %s sent %d, 421 %d, messages %d", s.Destination, s.Sent[i], s.Replies421[i], s.Messages[i])
	}
	if s.Concurrency[i] != after.Concurrency || s.MaxConcurrency[i] != after.MaxConcurrency || s.State[i] != 'p' {
		t.Errorf("step of t0: concurrency %d/%d state %q; the policy says %d/%d paused",
			s.Concurrency[i], s.MaxConcurrency[i], s.State[i], after.Concurrency, after.MaxConcurrency)
	}
	if len(s.Pauses) != 1 || !s.Pauses[0].From.Equal(t0.Add(3*time.Second)) || !s.Pauses[0].Until.Equal(after.PausedUntil.Truncate(time.Millisecond)) {
		t.Errorf("pauses %+v, want one from t0+3s until %v", s.Pauses, after.PausedUntil)
	}
	if s.Concurrency[i+1] != after.Concurrency || s.State[i+1] == '.' {
		t.Errorf("the step reading at t0+10s is missing: concurrency %d, state %q", s.Concurrency[i+1], s.State[i+1])
	}
	if i-1 >= 0 && s.State[i-1] != '.' {
		t.Errorf("a step before the first reading has state %q", s.State[i-1])
	}
}

// TestTimelineSelected: ?timeline=NAME charts that destination besides
// the busiest, on both surfaces; the public one stays behind the Host
// guard.
func TestTimelineSelected(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.tel.Timeline = timeline.New(10, f.clk.Now) // the fixture's bound is 3
	for i, d := range []string{"a.test", "b.test", "c.test", "d.test", "e.test", "f.test", "g.test"} {
		for range 10 - i {
			f.tel.OnAttempt(scheduler.Attempt{Dest: d, Status: "sent", Reply: reply.Reply{Code: 250}, First: true})
		}
	}
	f.tel.OnAttempt(scheduler.Attempt{Dest: "quiet.test", Status: "deferred", Reply: reply.Reply{Code: 451}, First: true})
	names := func(h http.Handler, path string) string {
		t.Helper()
		rec := httptestGet(t, h, path)
		var d Dashboard
		if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
			t.Fatalf("%s: %d %v", path, rec.Code, err)
		}
		var out []string
		for _, s := range d.Timeline.Destinations {
			out = append(out, s.Destination)
		}
		return strings.Join(out, " ")
	}
	for _, h := range []http.Handler{f.srv.APIHandler(), f.srv.HTTPHandler("127.0.0.1:8025")} {
		if got := names(h, "/v1/dashboard"); got != "a.test b.test c.test d.test e.test f.test" {
			t.Errorf("busiest: %s", got)
		}
		if got := names(h, "/v1/dashboard?timeline=quiet.test"); got != "a.test b.test c.test d.test e.test f.test quiet.test" {
			t.Errorf("with quiet.test selected: %s", got)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, "/v1/dashboard?timeline=quiet.test", nil)
	req.Host = "rebind.evil.example:8025"
	if rec := httptestRecorder(f.srv.HTTPHandler("127.0.0.1:8025"), req); rec.Code == http.StatusOK {
		t.Errorf("a foreign Host got the timeline: %d", rec.Code)
	}
}
