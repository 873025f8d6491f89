package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"sluice/config"
	"sluice/events"
	"sluice/queue"
)

// EventsControl is the daemon's event runner as the admin API sees it
// (events.Runner).
type EventsControl interface {
	Status() (events.Status, error)
	Replay(since time.Time, sink string) (events.ReplayResult, error)
}

// ReplayRequest is the body of POST /v1/events/replay.
type ReplayRequest struct {
	Since time.Time `json:"since"`
	// Sink is a webhook URL or the file sink's path; "" = every sink.
	Sink string `json:"sink,omitempty"`
}

// TailLine is one line of GET /v1/events/tail: an event, or a heartbeat
// that keeps an idle stream open.
type TailLine struct {
	Event     *queue.Event `json:"event,omitempty"`
	Heartbeat bool         `json:"heartbeat,omitempty"`
}

// tailHeartbeat is shorter than the client's idle limit (streamIdle).
const tailHeartbeat = 20 * time.Second

func (s *Server) eventsOff(w http.ResponseWriter) bool {
	if s.o.Events == nil || !s.o.Queue.EventsOn() {
		writeErr(w, http.StatusConflict, "no event sink is configured ([[events.webhook]] or events.file): events are not stored")
		return true
	}
	return false
}

// getEvents answers GET /v1/events: the outbox and each sink.
func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) {
	if s.o.Events == nil {
		writeJSON(w, http.StatusOK, events.Status{})
		return
	}
	st, err := s.o.Events.Status()
	if err != nil {
		writeErr(w, s.statusOf("events", err), "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// postReplay answers POST /v1/events/replay: the sinks are sent every
// stored event from since on again (same IDs).
func (s *Server) postReplay(w http.ResponseWriter, r *http.Request) {
	var req ReplayRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, http.StatusBadRequest, "%v", err)
		return
	}
	if s.eventsOff(w) {
		return
	}
	res, err := s.o.Events.Replay(req.Since, req.Sink)
	if errors.Is(err, events.ErrNoSink) {
		writeErr(w, http.StatusNotFound, "no configured sink is %q", req.Sink)
		return
	}
	if err != nil {
		writeErr(w, s.statusOf("events replay", err), "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// getTail answers GET /v1/events/tail: the events as they commit, one
// TailLine each (application/x-ndjson), from ?after=ID or from now, until
// the client goes away.
func (s *Server) getTail(w http.ResponseWriter, r *http.Request) {
	if s.eventsOff(w) {
		return
	}
	from := int64(-1) // from now
	if a := r.URL.Query().Get("after"); a != "" {
		n, err := queue.ParseEventID(a)
		if err != nil || n > 1<<62 {
			writeErr(w, http.StatusBadRequest, "after: want an event ID (16 hex digits)")
			return
		}
		from = int64(n)
	}
	lw := newLineWriter(w)
	// The status line goes out at once: the stream may stay quiet.
	if err := lw.line(TailLine{Heartbeat: true}); err != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		t := time.NewTicker(tailHeartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.tailMu.Lock()
				err := lw.line(TailLine{Heartbeat: true})
				s.tailMu.Unlock()
				if err != nil {
					cancel()
					return
				}
			}
		}
	}()
	err := events.Tail(ctx, s.o.Queue, from, func(e queue.Event) error {
		s.tailMu.Lock()
		defer s.tailMu.Unlock()
		return lw.line(TailLine{Event: &e})
	})
	if err != nil && ctx.Err() == nil {
		s.tailMu.Lock()
		_ = lw.line(ActionLine{Error: err.Error()})
		s.tailMu.Unlock()
	}
}

// eventsStatus is the events part of Status (nil: events off and never
// dropped anything).
func (s *Server) eventsStatus() *events.Status {
	if s.o.Events == nil {
		return nil
	}
	st, err := s.o.Events.Status()
	if err != nil || (!st.On && st.Dropped == 0) {
		return nil
	}
	return &st
}

// ParseSince reads --since: an RFC 3339 time or a duration back from now
// ("2h", "7d").
func ParseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	d, err := config.ParseDuration(v)
	if err != nil {
		return time.Time{}, errors.New("want an RFC 3339 time (2026-11-30T12:00:00Z) or a duration back from now (2h, 7d)")
	}
	return now.Add(-d.D()), nil
}

// Events reads the outbox and sinks (GET /v1/events).
func (c *Client) Events(ctx context.Context) (events.Status, error) {
	var st events.Status
	return st, c.do(ctx, http.MethodGet, "/v1/events", nil, &st)
}

// Replay re-sends the stored events from since on (POST
// /v1/events/replay).
func (c *Client) Replay(ctx context.Context, req ReplayRequest) (events.ReplayResult, error) {
	var res events.ReplayResult
	return res, c.do(ctx, http.MethodPost, "/v1/events/replay", req, &res)
}

// Tail calls fn with every event the daemon commits from now (or after
// the event after, when not ""), until ctx ends or fn fails.
func (c *Client) Tail(ctx context.Context, after string, fn func(queue.Event) error) error {
	path := "/v1/events/tail"
	if after != "" {
		path += "?after=" + url.QueryEscape(after)
	}
	return c.stream(ctx, http.MethodGet, path, nil, func(line []byte) error {
		var tl struct {
			TailLine
			Error string `json:"error"`
		}
		if err := json.Unmarshal(line, &tl); err != nil {
			return fmt.Errorf("admin %s: bad line: %w", c.addr, err)
		}
		if tl.Error != "" {
			return fmt.Errorf("admin %s: %s", c.addr, tl.Error)
		}
		if tl.Event != nil {
			return fn(*tl.Event)
		}
		return nil
	}, func(res *http.Response) error {
		return fmt.Errorf("admin %s: the daemon does not stream events", c.addr)
	})
}
