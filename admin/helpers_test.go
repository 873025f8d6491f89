package admin

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"sluice/config"
	"sluice/internal/fakeclock"
	"sluice/policy"
	"sluice/queue"
	"sluice/reply"
)

// clock is the shared test clock (internal/fakeclock).
type clock = fakeclock.Clock

// at returns a test clock set to t.
func at(t time.Time) *clock {
	c := fakeclock.New()
	c.Set(t)
	return c
}

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

type fixture struct {
	clk    *clock
	q      *queue.Queue
	pol    *policy.Policy
	srv    *Server
	tel    *Telemetry
	client *Client
	kicks  chan struct{}
	dir    string
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clk: at(t0), dir: t.TempDir(), kicks: make(chan struct{}, 100)}
	var err error
	qo := queue.OptionsFrom(config.Default())
	qo.Path, qo.Now, qo.NoSync, qo.Logger = filepath.Join(f.dir, "queue.db"), f.clk.Now, true, quietLog()
	f.q, err = queue.Open(qo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.q.Close() })
	f.pol = f.newPolicy(t)
	f.tel = NewTelemetry(TelemetryOptions{Queue: f.q, Policy: f.pol, Clock: f.clk, Now: f.clk.Now, MaxDestinations: 3, Logger: quietLog()})
	f.srv = New(Options{Queue: f.q, Policy: f.pol, Telemetry: f.tel, Kick: func() { f.kicks <- struct{}{} },
		Hostname: "sluice.test", Version: "v-test", Started: t0.Add(-time.Hour), Now: f.clk.Now, Logger: quietLog(),
		HTTPHosts: []string{"example.com"}}) // httptest.NewRequest's Host
	ts := httptest.NewServer(f.srv.APIHandler())
	t.Cleanup(ts.Close)
	f.client = NewClient(ts.Listener.Addr().String(), "")
	return f
}

func (f *fixture) newPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	// The daemon's options from the default config, on the fixture's clock.
	o := policy.OptionsFrom(config.Default())
	o.Now, o.Store, o.Rand, o.Logger = f.clk.Now, f.q, func() float64 { return 0.5 }, quietLog()
	p, err := policy.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) enqueue(t *testing.T, from string, rcpts ...string) string {
	t.Helper()
	id, err := f.q.Enqueue(context.Background(), queue.NewMessage{From: from, Rcpts: rcpts,
		Body: []byte("From: <" + from + ">\r\nSubject: t\r\nMessage-ID: <x@y>\r\n\r\nhi\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// pause makes dest paused: a 421 at greeting with 4.3.2 is "unavailable".
func (f *fixture) pause(dest string) {
	f.pol.Observe(dest, policy.Outcome{Reply: reply.Reply{Stage: reply.StageGreeting, Code: 421, Enhanced: "4.3.2", Text: "Service not available"}, Attempts: 1, Queued: f.clk.Now()})
}

func ctx() context.Context { return context.Background() }

func httptestRecorder(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}
