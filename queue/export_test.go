package queue

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"sluice/dsn"
)

// fillForExport writes one message in every state the queue knows, a
// spooled body, suppressions and destination states, closes the queue
// and returns the path and the messages as Get returned them.
func fillForExport(t *testing.T) (path string, want map[string]*Message, bodies map[string][]byte) {
	t.Helper()
	q, c, o := openTest(t, func(o *Options) { o.InlineMax = 1024; o.LeaseTimeout = time.Hour })
	ctx := context.Background()
	bodies = map[string][]byte{}
	add := func(body []byte, rcpts ...string) string {
		sp := q.NewSpool()
		sp.Write(body)
		// DSN parameters (issue 13 item 5) on every message and its
		// first recipient: they move with the queue.
		id, err := q.Enqueue(ctx, NewMessage{From: "sender@example.org", Rcpts: rcpts, Spool: sp, ClientAddr: "192.0.2.1:25", Helo: "client.test", User: "app",
			RequireTLS: true, // REQUIRETLS (issue 14 item 5) moves with the queue too
			DSN:        dsn.Envelope{Ret: dsn.RetHdrs, EnvID: "env+1"}, RcptDSN: []dsn.Rcpt{{Notify: dsn.NotifySuccess | dsn.NotifyDelay, ORcpt: "rfc822;orig@x.test"}}})
		if err != nil {
			t.Fatal(err)
		}
		bodies[id] = body
		return id
	}
	small := []byte("Subject: small\r\n\r\nhello\r\n")
	big := []byte("Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef\xc3\xa9", 400) + "\r\n")
	deferred := add(small, "later@x.test", "held@y.test")
	spooled := add(big, "big@z.test")
	active := add(small, "inflight@x.test")
	done := add(small, "sent@x.test", "bounced@y.test")
	c.Advance(time.Second)
	items, err := q.Lease(c.Now(), 100)
	if err != nil || len(items) != 6 {
		t.Fatalf("Lease = %d, %v", len(items), err)
	}
	att := func(reply string) *Attempt {
		return &Attempt{At: c.Now(), Relay: "mx.test", Reply: reply, Class: "c", Status: "s"}
	}
	update(t, q,
		Update{ID: deferred, Rcpt: 0, State: StateQueued, NextAttempt: c.Now().Add(time.Hour), Attempt: att("451 later"), DelayWarned: true},
		Update{ID: deferred, Rcpt: 1, State: StateQueued, NextAttempt: c.Now().Add(time.Hour)},
		Update{ID: spooled, Rcpt: 0, State: StateQueued, NextAttempt: c.Now().Add(time.Minute)},
		Update{ID: done, Rcpt: 0, State: StateSent, Attempt: att("250 ok")},
		Update{ID: done, Rcpt: 1, State: StateBounced, Attempt: att("550 no")})
	if err := q.write(ctx, func(w *wtx) error {
		r, err := w.rcpt(deferred, 1)
		if err != nil {
			return err
		}
		return w.transition(deferred, 1, r, StateHeld, time.Time{})
	}, nil); err != nil {
		t.Fatal(err)
	}
	if err := q.Suppress("Gone@Example.org", "550 5.1.1"); err != nil {
		t.Fatal(err)
	}
	if err := q.SaveDestination("x.test", []byte(`{"k":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := q.SaveDestination("y.test", []byte(`{"k":2,"runtime":{"c":3,"r":1.5}}`)); err != nil {
		t.Fatal(err)
	}
	want = map[string]*Message{}
	for _, id := range []string{deferred, spooled, active, done} {
		m, err := q.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = m
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	return o.Path, want, bodies
}

// fakeLimits is a LimitsCodec over states of the form
// {"k":N,"runtime":{"c":C,"r":R}}.
type fakeLimits struct{}

type fakeState struct {
	K       int       `json:"k"`
	Runtime *struct { // the order of a policy record: runtime after the rest
		C int     `json:"c"`
		R float64 `json:"r"`
	} `json:"runtime,omitempty"`
}

func (fakeLimits) Split(state []byte) ([]byte, *RuntimeLimits, error) {
	var s fakeState
	if err := json.Unmarshal(state, &s); err != nil {
		return nil, nil, err
	}
	var l *RuntimeLimits
	if s.Runtime != nil {
		l = &RuntimeLimits{MaxConcurrency: s.Runtime.C, Rate: s.Runtime.R}
	}
	s.Runtime = nil
	b, err := json.Marshal(s)
	return b, l, err
}

func (fakeLimits) Join(state []byte, l RuntimeLimits) ([]byte, bool, error) {
	var s fakeState
	if state != nil {
		if err := json.Unmarshal(state, &s); err != nil {
			return nil, false, err
		}
		if s.Runtime != nil {
			return state, false, nil
		}
	}
	s.Runtime = &struct {
		C int     `json:"c"`
		R float64 `json:"r"`
	}{l.MaxConcurrency, l.Rate}
	b, err := json.Marshal(s)
	return b, true, err
}

// TestExportImportRoundTrip (issue 12 item 4): every message, recipient
// state, history, body (inline and spooled), suppression, destination
// state and runtime limit survives export then import into a new queue;
// a recipient in flight is exported as queued, due when it was due.
func TestExportImportRoundTrip(t *testing.T) {
	t.Parallel()
	path, want, bodies := fillForExport(t)
	var stream bytes.Buffer
	rep, err := Export(&stream, ExportOptions{Path: path, Limits: fakeLimits{}})
	if err != nil {
		t.Fatal(err)
	}
	if !want[spooledID(t, path, want)].Done.IsZero() {
		t.Fatal("the spooled message is finished")
	}
	if rep.Messages != 4 || rep.Suppressions != 1 || rep.Destinations != 2 || rep.Limits != 1 || len(rep.Lost) != 0 {
		t.Fatalf("export report = %+v", rep)
	}
	for _, line := range []string{
		`{"type":"destination","name":"y.test","state":"` + base64.StdEncoding.EncodeToString([]byte(`{"k":2}`)) + `"}`,
		`{"type":"limits","destination":"y.test","max_concurrency":3,"rate":1.5}`,
	} {
		if !strings.Contains(stream.String(), line+"\n") {
			t.Errorf("the stream has no line %s:\n%s", line, stream.String())
		}
	}
	if strings.Contains(stream.String(), `"active"`) {
		t.Error("a recipient is exported as active")
	}
	q, _, _ := openTest(t, func(o *Options) { o.InlineMax = 1024 })
	irep, err := q.ImportWith(bytes.NewReader(stream.Bytes()), ImportOptions{Limits: fakeLimits{}})
	if err != nil {
		t.Fatal(err)
	}
	if irep.Messages != 4 || irep.Suppressions != 1 || irep.Destinations != 2 || irep.Limits != 1 || irep.Duplicates != 0 {
		t.Fatalf("import report = %+v", irep)
	}
	for id, w := range want {
		got, err := q.Get(id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		for i := range w.Recipients {
			if w.Recipients[i].State == StateActive {
				// Exported as queued, due when it was due: now.
				if r := got.Recipients[i]; r.State != StateQueued || !r.NextAttempt.Equal(w.Recipients[i].NextAttempt) {
					t.Errorf("%s: in-flight recipient imported as %+v, want queued due at %v", id, r, w.Recipients[i].NextAttempt)
				}
				w.Recipients[i].State = StateQueued
			}
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s:\n got %+v\nwant %+v", id, got, w)
		}
		if w.Done.IsZero() {
			b, err := bodyOf(q, id)
			if err != nil || !bytes.Equal(b, bodies[id]) {
				t.Errorf("%s: body %q, %v", id, b, err)
			}
		}
	}
	if !q.IsSuppressed("gone@example.org") {
		t.Error("suppression lost")
	}
	if d, _ := q.LoadDestinations(); string(d["x.test"]) != `{"k":1}` || string(d["y.test"]) != `{"k":2,"runtime":{"c":3,"r":1.5}}` {
		t.Errorf("destinations = %q", d)
	}
	checkInvariants(t, q)
	if due, err := q.Lease(q.now(), 100); err != nil || len(due) != 1 {
		t.Errorf("due after the import: %v, %v; want the recipient that was in flight", due, err)
	}

	// Again: every message is refused as a duplicate, named, and left as
	// it was; the limits already set stay.
	irep, err = q.ImportWith(bytes.NewReader(stream.Bytes()), ImportOptions{Limits: fakeLimits{}})
	if err != nil || irep.Messages != 0 || irep.Duplicates != 4 || len(irep.DuplicateIDs) != 4 || irep.Limits != 0 || irep.LimitsKept != 1 {
		t.Errorf("second import = %+v, %v", irep, err)
	}
	checkInvariants(t, q)
}

// TestExportImportExportIsByteEqual (issue 12 item 4): export → import
// → export gives the same bytes, whole stream, header and end record
// included.
func TestExportImportExportIsByteEqual(t *testing.T) {
	t.Parallel()
	path, _, _ := fillForExport(t)
	var first bytes.Buffer
	if _, err := Export(&first, ExportOptions{Path: path, Limits: fakeLimits{}}); err != nil {
		t.Fatal(err)
	}
	q, _, o := openTest(t, func(o *Options) { o.InlineMax = 1024 })
	if _, err := q.ImportWith(bytes.NewReader(first.Bytes()), ImportOptions{Limits: fakeLimits{}}); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	var second bytes.Buffer
	if _, err := Export(&second, ExportOptions{Path: o.Path, Limits: fakeLimits{}}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		a, b := strings.Split(first.String(), "\n"), strings.Split(second.String(), "\n")
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("line %d differs:\nfirst  %.300s\nsecond %.300s", i+1, a[i], b[i])
			}
		}
		t.Fatalf("%d lines, then %d", len(a), len(b))
	}
}

// TestImportLimitsNeedACodec: a stream with runtime limits is refused by
// an import that could not store them, rather than dropping them.
func TestImportLimitsNeedACodec(t *testing.T) {
	t.Parallel()
	path, _, _ := fillForExport(t)
	var stream bytes.Buffer
	if _, err := Export(&stream, ExportOptions{Path: path, Limits: fakeLimits{}}); err != nil {
		t.Fatal(err)
	}
	q, _, _ := openTest(t, nil)
	if _, err := q.Import(&stream); err == nil || !strings.Contains(err.Error(), "runtime limits") {
		t.Errorf("import without a codec = %v", err)
	}
}

func TestImportRefusesBadStreams(t *testing.T) {
	t.Parallel()
	path, _, _ := fillForExport(t)
	var stream bytes.Buffer
	if _, err := Export(&stream, ExportOptions{Path: path}); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(stream.String(), "\n")
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "header"},
		{"not an export", "hello\n", "not a sluice queue export"},
		{"future version", strings.Replace(lines[0], `"version":1`, `"version":9`, 1), "version 9"},
		{"cut short", strings.Join(lines[:3], ""), "before its end record"},
		{"unknown record", lines[0] + `{"type":"zap"}` + "\n", "unknown record type"},
	}
	for _, tt := range tests {
		q, _, _ := openTest(t, nil)
		if _, err := q.Import(strings.NewReader(tt.in)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestExportLocked: a queue file held by a running queue is refused.
func TestExportLocked(t *testing.T) {
	t.Parallel()
	q, _, o := openTest(t, nil)
	enqueue(t, q, "a@x.test")
	if _, err := Export(&bytes.Buffer{}, ExportOptions{Path: o.Path}); !errors.Is(err, ErrLocked) {
		t.Errorf("Export of an open queue = %v, want ErrLocked", err)
	}
}

// TestTolerantExportSkipsDamage (issue 9 item 9): with a damaged page of
// message records and a missing body file, the tolerant export carries
// every other message and names the lost ones; the strict one fails.
func TestTolerantExportSkipsDamage(t *testing.T) {
	t.Parallel()
	q, _, o := openTest(t, func(o *Options) { o.InlineMax = 1024 })
	const n = 300
	ids := make([]string, n)
	for i := range ids {
		ids[i] = enqueue(t, q, "a@x.test")
	}
	sp := q.NewSpool()
	sp.Write(bytes.Repeat([]byte("x"), 4096))
	big, err := q.Enqueue(context.Background(), NewMessage{From: "s@example.org", Rcpts: []string{"b@y.test"}, Spool: sp})
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	if err := os.Remove(filepath.Join(filepath.Dir(o.Path), "spool", big)); err != nil {
		t.Fatal(err)
	}
	// Damage one leaf page of the msgs bucket: the second child of its
	// root branch page.
	rf, err := openRaw(o.Path, 0)
	if err != nil {
		t.Fatal(err)
	}
	mb, _, err := rf.bucket(bktMsgs)
	if err != nil || mb.root == 0 {
		t.Fatalf("msgs bucket %+v, %v", mb, err)
	}
	rootPage, _ := rf.page(mb.root, branchPageFlag)
	_, es, err := rf.elems(mb.root, rootPage)
	if err != nil || len(es) < 3 {
		t.Fatalf("msgs root has %d children, %v: need a bigger queue", len(es), err)
	}
	victim := es[1].child
	leaf, _ := rf.page(victim, leafPageFlag)
	_, lost, _ := rf.elems(victim, leaf)
	ps := rf.pageSize
	rf.Close()
	f, err := os.OpenFile(o.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, int(ps)), int64(victim)*ps); err != nil {
		t.Fatal(err)
	}
	f.Close()

	if _, err := Export(&bytes.Buffer{}, ExportOptions{Path: o.Path}); err == nil {
		t.Error("strict export of a damaged file succeeded")
	}
	var stream bytes.Buffer
	var warnings []string
	rep, err := Export(&stream, ExportOptions{Path: o.Path, Tolerant: true, Warn: func(p string) { warnings = append(warnings, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if want := n + 1 - len(lost) - 1; rep.Messages != want {
		t.Errorf("exported %d messages, want %d (%d on the damaged page, 1 without its body)", rep.Messages, want, len(lost))
	}
	if len(rep.Lost) != len(lost)+1 || len(warnings) == 0 {
		t.Errorf("lost = %d (%v), warnings %d; want %d", len(rep.Lost), rep.Lost, len(warnings), len(lost)+1)
	}
	nq, _, _ := openTest(t, nil)
	irep, err := nq.Import(&stream)
	if err != nil || irep.Messages != rep.Messages {
		t.Fatalf("import = %+v, %v", irep, err)
	}
	checkInvariants(t, nq)
}

// spooledID returns the one message of want with a body file.
func spooledID(t *testing.T, path string, want map[string]*Message) string {
	t.Helper()
	for id := range want {
		if _, err := os.Stat(filepath.Join(filepath.Dir(path), "spool", id)); err == nil {
			return id
		}
	}
	t.Fatal("no spooled body")
	return ""
}
