package events

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/config"
	"sluice/queue"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openQueue(t testing.TB) *queue.Queue {
	t.Helper()
	o := queue.OptionsFrom(config.Default())
	o.Path, o.Logger, o.LockTimeout = filepath.Join(t.TempDir(), "queue.db"), quiet(), 100*time.Millisecond
	q, err := queue.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func enqueue(t testing.TB, q *queue.Queue, rcpts ...string) string {
	t.Helper()
	id, err := q.Enqueue(context.Background(), queue.NewMessage{From: "app@sender.test", Rcpts: rcpts, Body: []byte("Subject: x\r\n\r\nx\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// referenceSignature is an implementation of the documented scheme
// written from the documentation alone (docs/operations.md), as a
// receiver in another language would: parse "t=...,v1=...", HMAC-SHA256
// of "<t>.<raw body>" with the secret, hex, constant-time compare.
func referenceSignature(secret, header string, body []byte, now time.Time) bool {
	var ts string
	var v1 []string
	for _, kv := range strings.Split(header, ",") {
		switch {
		case strings.HasPrefix(kv, "t="):
			ts = kv[2:]
		case strings.HasPrefix(kv, "v1="):
			v1 = append(v1, kv[3:])
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "." + string(body)))
	want := hex.EncodeToString(m.Sum(nil))
	for _, s := range v1 {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

// TestSignatureAgainstReference: our signature verifies with the
// reference implementation, and Verify accepts exactly what the
// reference accepts (tampered body, wrong secret, stale time, rotation).
func TestSignatureAgainstReference(t *testing.T) {
	t.Parallel()
	now := time.Unix(1764460800, 0)
	body := []byte(`{"events":[{"id":"0000000000000001","type":"delivered"}]}`)
	h := Sign([]byte("whsec_test"), now, body)
	if !strings.HasPrefix(h, "t=1764460800,v1=") {
		t.Fatalf("header %q", h)
	}
	// A fixed vector, computed independently:
	// printf '1764460800.%s' "$body" | openssl dgst -sha256 -hmac whsec_test
	const vector = "t=1764460800,v1=3d1ef80b6e2f04ec4deffe2c5ceb858a60f239a1e0715bc58d296decce764738"
	if h != vector {
		t.Fatalf("Sign = %q, want the openssl vector %q", h, vector)
	}
	for _, tc := range []struct {
		name   string
		secret string
		header string
		body   []byte
		at     time.Time
		ok     bool
	}{
		{"valid", "whsec_test", h, body, now.Add(time.Minute), true},
		{"tampered body", "whsec_test", h, append(bytes.Clone(body), ' '), now, false},
		{"wrong secret", "other", h, body, now, false},
		{"stale", "whsec_test", h, body, now.Add(6 * time.Minute), false},
		{"future", "whsec_test", h, body, now.Add(-6 * time.Minute), false},
		{"rotation: second v1 matches", "whsec_test", "t=1764460800,v1=" + strings.Repeat("0", 64) + "," + strings.SplitN(h, ",", 2)[1], body, now, true},
		{"no v1", "whsec_test", "t=1764460800", body, now, false},
		{"garbage", "whsec_test", "v1=abc,t=x", body, now, false},
	} {
		ref := referenceSignature(tc.secret, tc.header, tc.body, tc.at)
		got := Verify([]byte(tc.secret), tc.header, tc.body, tc.at, 5*time.Minute) == nil
		if ref != tc.ok || got != tc.ok {
			t.Errorf("%s: reference %v, Verify %v, want %v", tc.name, ref, got, tc.ok)
		}
	}
}

// receiver is an httptest webhook endpoint that verifies every POST with
// the reference implementation and records the events by ID.
type receiver struct {
	t      testing.TB
	secret string
	srv    *httptest.Server
	mu     sync.Mutex
	fail   int // answer 500 to this many POSTs first
	block  chan struct{}
	posts  int
	bad    int
	events map[string][]queue.Event
	got    chan struct{}
}

func newReceiver(t testing.TB, secret string) *receiver {
	rc := &receiver{t: t, secret: secret, events: map[string][]queue.Event{}, got: make(chan struct{}, 1)}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if rc.block != nil {
		select {
		case <-rc.block:
		case <-r.Context().Done():
			return
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.posts++
	if !referenceSignature(rc.secret, r.Header.Get(SignatureHeader), body, time.Now()) {
		rc.bad++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if rc.fail > 0 {
		rc.fail--
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	var b Body
	if err := json.Unmarshal(body, &b); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, e := range b.Events {
		rc.events[e.ID] = append(rc.events[e.ID], e)
	}
	select {
	case rc.got <- struct{}{}:
	default:
	}
}

// waitFor waits until the receiver holds n distinct events.
func (rc *receiver) waitFor(n int) {
	rc.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		rc.mu.Lock()
		have := len(rc.events)
		rc.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-rc.got:
		case <-deadline:
			rc.t.Fatalf("receiver has %d events, want %d", have, n)
		}
	}
}

func writeSecret(t testing.TB, s string) string {
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func eventsConfig(hooks ...config.Webhook) config.Events {
	c := config.Default().Events
	c.Webhooks = hooks
	return c
}

func hook(url, secret string, types ...string) config.Webhook {
	return config.Webhook{URL: url, Secret: secret, Events: types, Batch: 3, Timeout: config.Duration(5 * time.Second)}
}

func startRunner(t testing.TB, q *queue.Queue, c config.Events) (*Runner, context.CancelFunc) {
	t.Helper()
	r := New(Options{Queue: q, UserAgent: "sluice-test", Logger: quiet(),
		RetryBase: time.Millisecond, RetryMax: 20 * time.Millisecond, PruneEvery: time.Hour})
	if err := r.Configure(c); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, cancel
}

// TestWebhookAtLeastOnceWithBackoff: a receiver that fails the first
// POSTs gets every event after the retries, signed, in batches of at most
// `batch`; the cursor ends at the last event.
func TestWebhookAtLeastOnceWithBackoff(t *testing.T) {
	t.Parallel()
	q := openQueue(t)
	rc := newReceiver(t, "s3cret")
	rc.fail = 4
	r, _ := startRunner(t, q, eventsConfig(hook(rc.srv.URL, "s3cret")))
	for i := 0; i < 10; i++ {
		enqueue(t, q, fmt.Sprintf("u%d@dest.test", i))
	}
	rc.waitFor(10)
	rc.mu.Lock()
	if rc.bad != 0 {
		t.Errorf("%d POSTs failed the reference signature check", rc.bad)
	}
	for id, evs := range rc.events {
		if evs[0].Type != queue.EventAccepted || evs[0].ID != id {
			t.Errorf("%s: %+v", id, evs[0])
		}
	}
	rc.mu.Unlock()
	waitCursor(t, q, WebhookSink(rc.srv.URL), 10)
	st, err := r.Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Sinks) != 1 || st.Sinks[0].Failures < 4 || st.Sinks[0].Sent < 10 || st.Sinks[0].LastError != "HTTP 500" || st.Sinks[0].Pending != 0 {
		t.Errorf("status %+v", st.Sinks)
	}
}

func waitCursor(t testing.TB, q *queue.Queue, sink string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cur, err := q.EventCursor(sink)
		if err != nil {
			t.Fatal(err)
		}
		if cur >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cursor %d, want %d", cur, want)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
}

// TestWebhookEventFilter: a webhook configured for some types receives
// only those; the others still move its cursor.
func TestWebhookEventFilter(t *testing.T) {
	t.Parallel()
	q := openQueue(t)
	rc := newReceiver(t, "k")
	startRunner(t, q, eventsConfig(hook(rc.srv.URL, "k", "held", "deleted")))
	id := enqueue(t, q, "a@dest.test", "b@dest.test")
	if _, err := q.Hold([]string{id}); err != nil {
		t.Fatal(err)
	}
	rc.waitFor(2)
	rc.mu.Lock()
	for _, evs := range rc.events {
		if evs[0].Type != queue.EventHeld {
			t.Errorf("got a %s event", evs[0].Type)
		}
	}
	rc.mu.Unlock()
}

// TestDeadEndpointDoesNotSlowDelivery: an endpoint that never answers
// holds no lock and no commit: enqueues and updates go on, and the events
// wait in the outbox.
func TestDeadEndpointDoesNotSlowDelivery(t *testing.T) {
	t.Parallel()
	q := openQueue(t)
	rc := newReceiver(t, "k")
	rc.block = make(chan struct{})
	defer close(rc.block)
	r, _ := startRunner(t, q, eventsConfig(hook(rc.srv.URL, "k")))
	start := time.Now()
	for i := 0; i < 200; i++ {
		id := enqueue(t, q, "a@dest.test")
		if err := q.Update(context.Background(), []queue.Update{{ID: id, Rcpt: 0, State: queue.StateSent, Attempt: &queue.Attempt{At: time.Now(), Reply: "250 ok"}}}); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	st, err := r.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 400 || st.Sinks[0].Pending != 400 {
		t.Fatalf("outbox %d events, %d pending; want 400", st.Events, st.Sinks[0].Pending)
	}
	t.Logf("200 messages enqueued and delivered in %v with the endpoint hanging", took)
}

// TestFileSinkAndReplay: the file sink writes one JSON line per event;
// a replay re-sends from a time with the same IDs.
func TestFileSinkAndReplay(t *testing.T) {
	t.Parallel()
	q := openQueue(t)
	path := filepath.Join(t.TempDir(), "events.jsonl")
	c := eventsConfig()
	c.File = path
	r, _ := startRunner(t, q, c)
	enqueue(t, q, "a@dest.test")
	enqueue(t, q, "b@dest.test")
	waitCursor(t, q, FileSink(path), 2)
	lines := readLines(t, path)
	if len(lines) != 2 || lines[0].ID != queue.EventID(1) || lines[1].Recipient != "b@dest.test" {
		t.Fatalf("lines %+v", lines)
	}
	res, err := r.Replay(time.Time{}, "")
	if err != nil || res.From != queue.EventID(1) || res.Events != 2 {
		t.Fatalf("replay %+v %v", res, err)
	}
	enqueue(t, q, "c@dest.test")
	waitCursor(t, q, FileSink(path), 3)
	lines = readLines(t, path)
	var ids []string
	for _, e := range lines {
		ids = append(ids, e.ID)
	}
	if got := strings.Join(ids, ","); got != "0000000000000001,0000000000000002,0000000000000001,0000000000000002,0000000000000003" {
		t.Fatalf("after replay: %s", got)
	}
	if _, err := r.Replay(time.Time{}, "https://nowhere.test/"); err != ErrNoSink {
		t.Fatalf("replay to an unknown sink: %v", err)
	}
}

func readLines(t testing.TB, path string) []queue.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []queue.Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e queue.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

// TestCapDropRaisesAlarm: a dead endpoint until events.max_bytes: the
// drop is in the status with its ID range and the alarm is raised.
func TestCapDropRaisesAlarm(t *testing.T) {
	t.Parallel()
	q := openQueue(t)
	rc := newReceiver(t, "k")
	rc.block = make(chan struct{})
	defer close(rc.block)
	c := eventsConfig(hook(rc.srv.URL, "k"))
	c.MaxBytes = 1 << 20
	r, _ := startRunner(t, q, c)
	rcpts := make([]string, 1000)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("recipient-number-%d@a-fairly-long-destination-domain.test", i)
	}
	for i := 0; i < 8; i++ {
		enqueue(t, q, rcpts...)
	}
	st, err := r.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Dropped == 0 || st.LastDrop == nil || st.LastDrop.First != queue.EventID(1) || !strings.Contains(st.Alarm, "dropped") || st.Bytes > 1<<20 {
		t.Fatalf("status %+v", st)
	}
	t.Logf("alarm: %s", st.Alarm)
}

// TestReloadChangesWebhooks: Configure while running swaps sinks; a
// removed webhook stops, an added one starts at the end of the outbox.
func TestReloadChangesWebhooks(t *testing.T) {
	t.Parallel()
	q := openQueue(t)
	a, b := newReceiver(t, "a"), newReceiver(t, "b")
	r, _ := startRunner(t, q, eventsConfig(hook(a.srv.URL, "a")))
	enqueue(t, q, "1@dest.test")
	a.waitFor(1)
	if err := r.Configure(eventsConfig(hook(b.srv.URL, "b"))); err != nil {
		t.Fatal(err)
	}
	enqueue(t, q, "2@dest.test")
	b.waitFor(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.events[queue.EventID(2)]; !ok || len(b.events) != 1 {
		t.Fatalf("the new webhook got %v, want event 2 only", b.events)
	}
}

// TestConfigureRefusesUnopenableFile: a file sink that cannot be opened
// refuses the configuration whole (the start fails; a reload is refused
// by Check) and the running sinks stay as they were.
func TestConfigureRefusesUnopenableFile(t *testing.T) {
	t.Parallel()
	q := openQueue(t)
	rc := newReceiver(t, "k")
	r, _ := startRunner(t, q, eventsConfig(hook(rc.srv.URL, "k")))
	bad := eventsConfig(hook(rc.srv.URL, "k"))
	bad.File = filepath.Join(t.TempDir(), "no-such-dir", "events.jsonl")
	if err := r.Configure(bad); err == nil || !strings.Contains(err.Error(), "no-such-dir") {
		t.Fatalf("Configure: %v", err)
	}
	if err := Check(bad); err == nil {
		t.Fatal("Check accepted a file that cannot be opened")
	}
	enqueue(t, q, "a@dest.test")
	rc.waitFor(1)
	st, err := r.Status()
	if err != nil || len(st.Sinks) != 1 || st.Sinks[0].Kind != "webhook" {
		t.Fatalf("status after the refused configuration: %+v %v", st.Sinks, err)
	}
}
