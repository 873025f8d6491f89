package admin

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sluice/policy"
	"sluice/queue"
	"sluice/reply"
	"sluice/scheduler"
)

func TestStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.enqueue(t, "a@src.test", "b@dest.test", "c@dest.test")
	st, err := f.client.Status(ctx())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Up || !st.Ready || st.Version != "v-test" || st.Queue["queued"] != 2 || st.UptimeSeconds != 3600 || st.Oldest == nil {
		t.Fatalf("status = %+v", st)
	}
	f.srv.o.Ready = func() error { return errors.New("draining") }
	rec := httptestGet(t, f.srv.HTTPHandler("127.0.0.1:8025"), "/readyz")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "draining") {
		t.Fatalf("readyz = %d %s", rec.Code, rec.Body)
	}
}

func TestListShowSummary(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	old := f.enqueue(t, "a@src.test", "b@dest.test")
	f.clk.Advance(30 * time.Minute)
	f.enqueue(t, "", "c@other.test", "d@dest.test")
	f.clk.Advance(time.Minute)

	tests := []struct {
		name string
		q    ListQuery
		want int
	}{
		{"all", ListQuery{}, 2},
		{"domain", ListQuery{Domain: "other.test"}, 1},
		{"domain case", ListQuery{Domain: "DEST.test"}, 2},
		{"older", ListQuery{OlderThan: "10m"}, 1},
		{"older days", ListQuery{OlderThan: "1d"}, 0},
		{"state held", ListQuery{State: "held"}, 0},
		{"limit", ListQuery{Limit: 1}, 1},
	}
	for _, tc := range tests {
		msgs, err := f.client.List(ctx(), tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(msgs) != tc.want {
			t.Errorf("%s: %d messages, want %d", tc.name, len(msgs), tc.want)
		}
	}
	for _, bad := range []ListQuery{{State: "nope"}, {OlderThan: "soon"}} {
		var ae *APIError
		if _, err := f.client.List(ctx(), bad); !errors.As(err, &ae) || ae.Status != 400 {
			t.Errorf("List(%+v) = %v, want 400", bad, err)
		}
	}

	m, err := f.client.Show(ctx(), old)
	if err != nil {
		t.Fatal(err)
	}
	if m.From != "a@src.test" || len(m.Recipients) != 1 || m.Recipients[0].State != "queued" {
		t.Fatalf("show = %+v", m)
	}
	var ae *APIError
	if _, err := f.client.Show(ctx(), "NOSUCHID"); !errors.As(err, &ae) || ae.Status != 404 {
		t.Fatalf("show unknown = %v, want 404", err)
	}

	s, err := f.client.Summary(ctx())
	if err != nil {
		t.Fatal(err)
	}
	if s.Total.Total != 3 || len(s.Rows) != 2 || s.Rows[0].Domain != "dest.test" || s.Rows[0].Counts[0] != 1 || s.Rows[0].Counts[3] != 1 {
		t.Fatalf("summary = %+v", s)
	}
}

func TestAgeBucket(t *testing.T) {
	t.Parallel()
	tests := []struct {
		age  time.Duration
		want string
	}{
		{0, "0-5m"}, {4*time.Minute + 59*time.Second, "0-5m"}, {5 * time.Minute, "5-10m"}, {10 * time.Minute, "10-20m"},
		{39 * time.Minute, "20-40m"}, {40 * time.Minute, "40-80m"}, {80 * time.Minute, "80-160m"},
		{160 * time.Minute, "160m+"}, {72 * time.Hour, "160m+"}, {-time.Minute, "0-5m"},
	}
	for _, tc := range tests {
		if got := SummaryBuckets[ageBucket(tc.age)]; got != tc.want {
			t.Errorf("ageBucket(%v) = %s, want %s", tc.age, got, tc.want)
		}
	}
}

func TestActions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.enqueue(t, "a@src.test", "b@dest.test")
	b := f.enqueue(t, "a@src.test", "c@dest.test", "d@other.test")

	steps := []struct {
		action string
		sel    Selection
		want   int
		state  map[string]string // addr -> state after
	}{
		{"hold", Selection{IDs: []string{a}}, 1, map[string]string{"b@dest.test": "held", "c@dest.test": "queued"}},
		{"hold", Selection{Domain: "dest.test"}, 1, map[string]string{"c@dest.test": "held", "d@other.test": "held"}},
		{"release", Selection{IDs: []string{a, "UNKNOWNID"}}, 1, map[string]string{"b@dest.test": "queued"}},
		{"delete", Selection{IDs: []string{a}}, 1, map[string]string{"b@dest.test": "deleted"}},
		{"bounce", Selection{IDs: []string{b}}, 1, map[string]string{"c@dest.test": "bounced", "d@other.test": "bounced"}},
	}
	for _, st := range steps {
		res, err := f.client.Act(ctx(), st.action, st.sel)
		if err != nil {
			t.Fatalf("%s %+v: %v", st.action, st.sel, err)
		}
		if res.Changed != st.want {
			t.Errorf("%s %+v: changed %d, want %d", st.action, st.sel, res.Changed, st.want)
		}
		for addr, want := range st.state {
			if got := rcptState(t, f.q, addr); got != want {
				t.Errorf("after %s: %s is %s, want %s", st.action, addr, got, want)
			}
		}
	}
	// The bounce sent one DSN to the sender, from the null sender.
	msgs, err := f.q.List(queue.Filter{Domain: "src.test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].From != "" {
		t.Fatalf("DSNs = %+v", msgs)
	}
	body := readAllBody(t, f.q, msgs[0].ID)
	if !strings.Contains(string(body), "multipart/report") || !strings.Contains(string(body), operatorBounce) {
		t.Errorf("DSN body lacks the report:\n%s", body)
	}
	m, _ := f.q.Get(b)
	if h := m.Recipients[0].History; len(h) != 1 || h[0].Class != "operator" {
		t.Errorf("bounce not in history: %+v", h)
	}
	for _, bad := range []struct {
		action string
		sel    Selection
	}{{"hold", Selection{}}, {"hold", Selection{IDs: []string{a}, Domain: "x"}}, {"explode", Selection{IDs: []string{a}}}} {
		var ae *APIError
		if _, err := f.client.Act(ctx(), bad.action, bad.sel); !errors.As(err, &ae) || ae.Status != 400 {
			t.Errorf("%s %+v = %v, want 400", bad.action, bad.sel, err)
		}
	}
}

func rcptState(t *testing.T, q *queue.Queue, addr string) string {
	t.Helper()
	msgs, err := q.List(queue.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		for _, r := range m.Recipients {
			if r.Addr == addr {
				return string(r.State)
			}
		}
	}
	return "missing"
}

func TestFlushRespectsPause(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.enqueue(t, "a@src.test", "b@paused.test", "c@open.test")
	// Push both into the future, as a deferral does.
	items, err := f.q.Lease(f.clk.Now(), 10)
	if err != nil || len(items) != 2 {
		t.Fatalf("lease: %v %d", err, len(items))
	}
	var ups []queue.Update
	for _, it := range items {
		ups = append(ups, queue.Update{ID: it.ID, Rcpt: it.Rcpt, State: queue.StateQueued, NextAttempt: f.clk.Now().Add(time.Hour)})
	}
	if err := f.q.Update(ctx(), ups); err != nil {
		t.Fatal(err)
	}
	f.pause("paused.test")

	var ae *APIError
	if _, err := f.client.Flush(ctx(), FlushRequest{Domain: "paused.test"}); !errors.As(err, &ae) || ae.Status != 409 || !strings.Contains(ae.Message, "--force") {
		t.Fatalf("flush paused = %v, want 409 naming --force", err)
	}
	res, err := f.client.Flush(ctx(), FlushRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed != 1 || !slices.Equal(res.Skipped, []string{"paused.test"}) {
		t.Fatalf("flush all = %+v", res)
	}
	res, err = f.client.Flush(ctx(), FlushRequest{Domain: "paused.test", Force: true})
	if err != nil || res.Changed != 1 {
		t.Fatalf("flush --force = %+v, %v", res, err)
	}
	// Forced, the pause ends: the destination is half-open (one probe).
	if st, _ := f.pol.State(f.pol.Destination("paused.test", nil)); st.State != "probing" {
		t.Errorf("after flush --force the destination is %q, want probing", st.State)
	}
	if len(f.kicks) == 0 {
		t.Error("flush did not kick the scheduler")
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var ae *APIError
	if _, err := f.client.SetLimits(ctx(), "new.test", LimitsRequest{Rate: ptr("5/s")}); !errors.As(err, &ae) || ae.Status != 400 {
		t.Fatalf("rate only on an unknown destination = %v, want 400", err)
	}
	d, err := f.client.SetLimits(ctx(), "slow.test", LimitsRequest{MaxConcurrency: ptr(2), Rate: ptr("10/m")})
	if err != nil {
		t.Fatal(err)
	}
	// A new destination is in slow start (initial_concurrency = 1).
	if d.MaxConcurrency != 2 || d.Concurrency != 1 || d.MaxRate < 0.16 || d.MaxRate > 0.17 {
		t.Fatalf("after set: %+v", d)
	}
	// Only the rate: the maximum concurrency stays.
	if d, err = f.client.SetLimits(ctx(), "slow.test", LimitsRequest{Rate: ptr("1/s")}); err != nil || d.MaxConcurrency != 2 || d.MaxRate != 1 {
		t.Fatalf("rate only: %+v %v", d, err)
	}
	for _, bad := range []LimitsRequest{{MaxConcurrency: ptr(0)}, {MaxConcurrency: ptr(1), Rate: ptr("fast")}} {
		if _, err := f.client.SetLimits(ctx(), "slow.test", bad); !errors.As(err, &ae) || ae.Status != 400 {
			t.Errorf("SetLimits(%+v) = %v, want 400", bad, err)
		}
	}
	// Persisted: a new policy on the same queue file sees them.
	p2 := f.newPolicy(t)
	if st, ok := p2.State("slow.test"); !ok || st.MaxConcurrency != 2 {
		t.Fatalf("after restart: %+v %v", st, ok)
	}
	if d, err = f.client.ResetLimits(ctx(), "slow.test"); err != nil || d.MaxConcurrency != 20 {
		t.Fatalf("reset: %+v %v", d, err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestDomains(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.pause("down.test")
	for range 2 {
		f.tel.OnAttempt(scheduler.Attempt{Dest: "gmail", Domain: "gmail.com", Class: policy.ClassThrottle, Status: "deferred",
			Reply: reply.Reply{Stage: reply.StageRcpt, Code: 421, Enhanced: "4.7.28", Text: "rate limited"}})
	}
	f.pol.Observe("gmail", policy.Outcome{Reply: reply.Reply{Stage: reply.StageRcpt, Code: 421, Enhanced: "4.7.28", Text: "rate limited"}, Rcpt: "x@gmail.com", Attempts: 1})
	d, err := f.client.Domains(ctx())
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Destinations) != 2 || d.Destinations[0].Name != "down.test" || d.Destinations[0].State != policy.StatePaused || d.Destinations[0].PausedUntil == nil {
		t.Fatalf("domains = %+v", d)
	}
	if g := d.Destinations[1]; g.Replies421 != 2 || g.LastHour["throttle"] != 1 {
		t.Fatalf("gmail = %+v", g)
	}
	// A grouped domain resolves to its destination.
	dd, err := f.client.Domain(ctx(), "gmail.com")
	if err != nil {
		t.Fatal(err)
	}
	if dd.Destination.Name != "gmail" || len(dd.Recent) != 2 || !slices.Equal(dd.Domains, []string{"gmail.com"}) {
		t.Fatalf("domain detail = %+v", dd)
	}
	var ae *APIError
	if _, err := f.client.Domain(ctx(), "never.test"); !errors.As(err, &ae) || ae.Status != 404 {
		t.Fatalf("unknown = %v", err)
	}
}

func TestSuppress(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := f.client.Suppress(ctx(), "Bad@Dest.test", ""); err != nil {
		t.Fatal(err)
	}
	list, err := f.client.Suppressions(ctx())
	if err != nil || len(list) != 1 || list[0].Reason == "" {
		t.Fatalf("list = %+v %v", list, err)
	}
	if !f.q.IsSuppressed("bad@dest.test") {
		t.Fatal("not suppressed in the queue")
	}
	if err := f.client.Unsuppress(ctx(), "bad@dest.test"); err != nil {
		t.Fatal(err)
	}
	var ae *APIError
	if err := f.client.Unsuppress(ctx(), "bad@dest.test"); !errors.As(err, &ae) || ae.Status != 404 {
		t.Fatalf("second remove = %v, want 404", err)
	}
	if err := f.client.Suppress(ctx(), "", ""); !errors.As(err, &ae) || ae.Status != 400 {
		t.Fatalf("empty = %v, want 400", err)
	}
}

func TestUnixSocket(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	path := filepath.Join(f.dir, "admin.sock")
	// A socket left by a crashed daemon is replaced.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	l, err := f.srv.ListenAPI("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode = %v, %v; want 0600", fi.Mode(), err)
	}
	srv := Serve(l, f.srv.APIHandler(), quietLog())
	defer srv.Close()
	if _, err := NewClient("unix:"+path, "").Status(ctx()); err != nil {
		t.Fatal(err)
	}
}

func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func httptestGet(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestNoDaemon(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, addr := range []string{"unix:" + filepath.Join(dir, "nothing.sock"), closedPort(t)} {
		_, err := NewClient(addr, "").Status(ctx())
		if !errors.Is(err, ErrNoDaemon) {
			t.Errorf("%s: %v, want ErrNoDaemon", addr, err)
		}
	}
}

func TestTCPToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if _, err := APIToken("0.0.0.0:0", ""); !errors.Is(err, ErrInsecureAdmin) {
		t.Fatalf("non-loopback without token = %v, want ErrInsecureAdmin", err)
	}
	if _, err := f.srv.ListenAPI("0.0.0.0:0"); !errors.Is(err, ErrInsecureAdmin) {
		t.Fatalf("listen non-loopback without token = %v, want ErrInsecureAdmin", err)
	}
	tok := filepath.Join(f.dir, "token")
	os.WriteFile(tok, []byte("s3cret\n"), 0o600)
	token, err := APIToken("127.0.0.1:0", tok)
	if err != nil || token != "s3cret" {
		t.Fatalf("APIToken = %q, %v", token, err)
	}
	srv := New(Options{Queue: f.q, Policy: f.pol, Telemetry: f.tel, Token: token, Now: f.clk.Now, Logger: quietLog()})
	l, err := srv.ListenAPI("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := Serve(l, srv.APIHandler(), quietLog())
	defer hs.Close()
	addr := l.Addr().String()
	tests := []struct {
		token string
		ok    bool
	}{{"", false}, {"wrong", false}, {"s3cret", true}}
	for _, tc := range tests {
		_, err := NewClient(addr, tc.token).Status(ctx())
		var ae *APIError
		if tc.ok && err != nil || !tc.ok && (!errors.As(err, &ae) || ae.Status != 401) {
			t.Errorf("token %q: %v", tc.token, err)
		}
	}
	empty := filepath.Join(f.dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	if _, err := APIToken("127.0.0.1:0", empty); err == nil {
		t.Error("empty token file accepted")
	}
	// Loopback is no exception: every local user and every web page the
	// operator's browser opens can reach it.
	if _, err := APIToken("127.0.0.1:0", ""); !errors.Is(err, ErrInsecureAdmin) {
		t.Fatalf("loopback without token = %v, want ErrInsecureAdmin", err)
	}
	if l, err := New(Options{Queue: f.q, Policy: f.pol}).ListenAPI("127.0.0.1:0"); !errors.Is(err, ErrInsecureAdmin) {
		if l != nil {
			l.Close()
		}
		t.Fatalf("listen loopback without token = %v, want ErrInsecureAdmin", err)
	}
}

// TestUnixSocketLive: a socket another daemon serves is neither taken
// over nor deleted; a file that is not a socket is left alone; and a
// daemon removes the path on exit only while it is still its own socket.
func TestUnixSocketLive(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	path := filepath.Join(f.dir, "admin.sock")
	first, err := f.srv.ListenAPI("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	hs := Serve(first, f.srv.APIHandler(), quietLog())
	defer hs.Close()

	second := New(Options{Queue: f.q, Policy: f.pol, Logger: quietLog()})
	if l, err := second.ListenAPI("unix:" + path); !errors.Is(err, ErrSocketInUse) {
		if l != nil {
			l.Close()
		}
		t.Fatalf("second listen on a live socket = %v, want ErrSocketInUse", err)
	}
	if _, err := NewClient("unix:"+path, "").Status(ctx()); err != nil {
		t.Fatalf("the first daemon lost its socket: %v", err)
	}

	// The path is taken over behind the first daemon's back (as the old
	// code did): when the first stops, the newcomer's socket stays.
	os.Remove(path)
	other, err := second.ListenAPI("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	hs.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("closing the first listener removed a socket it did not create: %v", err)
	}
	other.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("own socket not removed on close: %v", err)
	}

	plain := filepath.Join(f.dir, "plain")
	os.WriteFile(plain, []byte("keep"), 0o600)
	if l, err := f.srv.ListenAPI("unix:" + plain); err == nil {
		l.Close()
		t.Fatal("a regular file was replaced by the socket")
	}
	if b, _ := os.ReadFile(plain); string(b) != "keep" {
		t.Fatal("the regular file was changed")
	}
}

// readAllBody reads the whole body of message id.
func readAllBody(t *testing.T, q *queue.Queue, id string) []byte {
	t.Helper()
	b, err := q.OpenBody(id)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	out, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Without [cluster], GET /v1/cluster says cluster mode is off (404).
func TestClusterStatusOff(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var ae *APIError
	if _, err := f.client.ClusterStatus(ctx()); !errors.As(err, &ae) || ae.Status != 404 || !strings.Contains(ae.Error(), "cluster mode is off") {
		t.Fatalf("cluster status without cluster mode = %v, want 404", err)
	}
}
