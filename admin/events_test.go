package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"sluice/events"
	"sluice/queue"
)

// fakeEvents is an EventsControl with a fixed status.
type fakeEvents struct {
	st      events.Status
	replays []ReplayRequest
}

func (f *fakeEvents) Status() (events.Status, error) { return f.st, nil }
func (f *fakeEvents) Replay(since time.Time, sink string) (events.ReplayResult, error) {
	f.replays = append(f.replays, ReplayRequest{Since: since, Sink: sink})
	if sink == "nope" {
		return events.ReplayResult{}, events.ErrNoSink
	}
	return events.ReplayResult{From: "0000000000000001", Events: 3, Sinks: []string{"https://app.test/hook"}}, nil
}

// TestStatusShowsEventsAlarm: the drop alarm is in the admin status with
// the sinks; the public /readyz keeps the counts and the alarm but not
// the sink URLs or their errors. The metrics carry it too.
func TestStatusShowsEventsAlarm(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fe := &fakeEvents{st: events.Status{On: true, Dropped: 7, Alarm: "7 undelivered events dropped",
		Sinks: []events.SinkStatus{{Name: "https://app.test/hook", Kind: "webhook", Pending: 3, LastError: "HTTP 500"}}}}
	f.srv.o.Events = fe
	st := f.srv.status()
	if st.Events == nil || st.Events.Alarm == "" || len(st.Events.Sinks) != 1 {
		t.Fatalf("status events %+v", st.Events)
	}
	req := httptest.NewRequest(http.MethodGet, "/readyz", nil)
	rec := httptestRecorder(f.srv.HTTPHandler("127.0.0.1:8025"), req)
	body := rec.Body.String()
	if !strings.Contains(body, "7 undelivered events dropped") || strings.Contains(body, "app.test") || strings.Contains(body, "HTTP 500") {
		t.Fatalf("readyz: %s", body)
	}
	tel := NewTelemetry(TelemetryOptions{Events: fe.Status, Logger: quietLog()})
	mrec := httptestRecorder(tel.Handler(), httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{"sluice_events_dropped_total 7", "sluice_events_alarm 1", `sluice_events_pending{sink="https://app.test/hook"} 3`} {
		if !strings.Contains(mrec.Body.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestEventsAPI: replay goes to the runner; an unknown sink is a 404;
// without a sink configured, tail and replay say events are not stored.
func TestEventsAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fe := &fakeEvents{}
	f.srv.o.Events = fe
	api := f.srv.APIHandler()
	post := func(body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/v1/events/replay", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return httptestRecorder(api, req)
	}
	if rec := post(`{"since":"2026-03-02T08:00:00Z"}`); rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "not stored") {
		t.Fatalf("replay with events off: %d %s", rec.Code, rec.Body)
	}
	if err := f.q.ConfigureEvents(queue.EventsConfig{Sinks: []string{"x"}, MaxBytes: 1 << 20, Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	rec := post(`{"since":"2026-03-02T08:00:00Z","sink":"https://app.test/hook"}`)
	var res events.ReplayResult
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &res) != nil || res.Events != 3 {
		t.Fatalf("replay: %d %s", rec.Code, rec.Body)
	}
	if len(fe.replays) != 1 || !fe.replays[0].Since.Equal(time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)) {
		t.Fatalf("replays %+v", fe.replays)
	}
	if rec := post(`{"since":"2026-03-02T08:00:00Z","sink":"nope"}`); rec.Code != http.StatusNotFound {
		t.Fatalf("unknown sink: %d", rec.Code)
	}
	if rec := post(`{"since":"x"}`); rec.Code != http.StatusBadRequest {
		t.Fatalf("bad since: %d", rec.Code)
	}
	req := httptest.NewRequest(http.MethodGet, "/v1/events/tail?after=zz", nil)
	if rec := httptestRecorder(api, req); rec.Code != http.StatusBadRequest {
		t.Fatalf("bad after: %d", rec.Code)
	}
}

func TestParseSince(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2h":                   now.Add(-2 * time.Hour),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"2026-11-29T10:00:00Z": time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC),
	} {
		got, err := ParseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	if _, err := ParseSince("yesterday", now); err == nil {
		t.Error("yesterday parsed")
	}
}
