package tlsrpt

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/fakeclock"
	"sluice/queue"
	"sluice/relay/outbound"
	"sluice/tlsrpt/tlsrpttest"
)

// validate checks a generated report (JSON) against the schema.
func validate(t *testing.T, j []byte) {
	t.Helper()
	if err := tlsrpttest.Validate(j); err != nil {
		t.Fatalf("%v\n%s", err, j)
	}
}

func openQueue(t *testing.T, path string) *queue.Queue {
	t.Helper()
	q, err := queue.Open(queue.Options{Path: path, LockTimeout: time.Second, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

type sent struct {
	from string
	to   []string
	msg  []byte
}

type rig struct {
	clock   *fakeclock.Clock
	results *outbound.TLSResults
	q       *queue.Queue
	r       *Reporter
	mails   chan sent
	dns     txtResolver
}

func newRig(t *testing.T, path string, dns txtResolver, hc *http.Client) *rig {
	t.Helper()
	g := &rig{clock: fakeclock.New(), results: outbound.NewTLSResults(), mails: make(chan sent, 16), dns: dns}
	g.clock.Set(time.Date(2026, 3, 4, 22, 0, 0, 0, time.UTC))
	g.results.KeepDeltas()
	g.q = openQueue(t, path)
	t.Cleanup(func() { g.q.Close() })
	g.r = New(Options{
		Identity:    Identity{Org: "Example Sender", Contact: "postmaster@mx.sender.test", Submitter: "mx.sender.test", From: "tlsrpt@sender.test"},
		Interval:    24 * time.Hour,
		FlushEvery:  time.Minute,
		RetryEvery:  time.Hour,
		GiveUpAfter: 24 * time.Hour,
		Source:      g.results, Store: g.q, Resolver: dns, HTTP: hc, Clock: g.clock,
		Mail: func(_ context.Context, from string, to []string, msg []byte) error {
			g.mails <- sent{from, to, msg}
			return nil
		},
	})
	return g
}

// record puts one day's worth of outcomes in the tally: an MTA-STS
// domain with successes and two kinds of failure, a DANE domain.
func (g *rig) record() {
	sts := outbound.TLSOutcome{Domain: "dest.test", Type: "sts",
		PolicyStrings: []string{"version: STSv1", "mode: enforce", "mx: mx.dest.test", "max_age: 86400"}, MXHosts: []string{"mx.dest.test"}}
	for range 3 {
		g.results.Record(sts)
	}
	f := sts
	f.Detail = outbound.TLSFailureDetail{Result: outbound.ResultExpired, SendingIP: "192.0.2.1", ReceivingMX: "mx.dest.test", ReceivingIP: "198.51.100.7"}
	g.results.Record(f)
	g.results.Record(f)
	f.Detail = outbound.TLSFailureDetail{Result: outbound.ResultValidationFailure, ReceivingMX: "rogue.dest.test", ReceivingIP: "2001:db8::25"}
	g.results.Record(f)
	g.results.Record(outbound.TLSOutcome{Domain: "dane.test", Type: "tlsa", PolicyStrings: []string{"3 1 1 abcd"}, MXHosts: []string{"mx.dane.test"}})
}

// readMail parses a mailed report: headers, the attachment's name and
// the report it carries.
func readMail(t *testing.T, raw []byte) (*mail.Message, string, []byte) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "tlsrpt" {
		t.Fatalf("Content-Type %q", m.Header.Get("Content-Type"))
	}
	name, j := tlsrpttest.MailedReport(t, m)
	return m, name, j
}

// TestDailyReportByMail: outcomes recorded before midnight UTC become,
// at midnight (virtual time), one report per policy domain, mailed to
// the domain's rua with RFC 8460 §5.3's headers and a §5.1 file name;
// the report validates against the committed schema; the store is
// emptied once the mail is queued.
func TestDailyReportByMail(t *testing.T) {
	t.Parallel()
	g := newRig(t, filepath.Join(t.TempDir(), "q.db"), txtResolver{
		"_smtp._tls.dest.test": {"v=TLSRPTv1; rua=mailto:tls-reports@dest.test"},
	}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	armed := g.clock.Armed()
	go func() { defer close(done); g.r.Run(ctx) }()
	<-armed
	g.record()
	// Midnight: the day closes; dane.test has no record (nothing sent).
	for g.clock.Now().Before(time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)) {
		next, _ := g.clock.NextTimer()
		armed = g.clock.Armed()
		g.clock.Set(next)
		<-armed
	}
	var s sent
	select {
	case s = <-g.mails:
	case <-time.After(10 * time.Second):
		t.Fatal("no report mailed at midnight")
	}
	cancel()
	<-done
	if s.from != "tlsrpt@sender.test" || len(s.to) != 1 || s.to[0] != "tls-reports@dest.test" {
		t.Errorf("envelope %q -> %v", s.from, s.to)
	}
	m, name, j := readMail(t, s.msg)
	start, end := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)
	wantSubject := "Report Domain: dest.test Submitter: mx.sender.test Report-ID: <1772582400.dest.test@mx.sender.test>"
	for k, v := range map[string]string{"Subject": wantSubject, "TLS-Report-Domain": "dest.test", "TLS-Report-Submitter": "mx.sender.test", "From": "<tlsrpt@sender.test>", "To": "<tls-reports@dest.test>"} {
		if got := m.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if start.Unix() != 1772582400 {
		t.Fatalf("start %d", start.Unix())
	}
	if want := "mx.sender.test!dest.test!1772582400!1772668800.json.gz"; name != want || end.Unix() != 1772668800 {
		t.Errorf("filename %q, want %q", name, want)
	}
	validate(t, j)
	var rep Report
	if err := json.Unmarshal(j, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.DateRange.Start != "2026-03-04T00:00:00Z" || rep.DateRange.End != "2026-03-04T23:59:59Z" || rep.OrganizationName != "Example Sender" ||
		rep.ContactInfo != "postmaster@mx.sender.test" || len(rep.Policies) != 1 {
		t.Fatalf("report %s", j)
	}
	p := rep.Policies[0]
	if p.Policy.Type != "sts" || p.Policy.Domain != "dest.test" || len(p.Policy.String) != 4 || p.Policy.MXHost[0] != "mx.dest.test" ||
		p.Summary.Successes != 3 || p.Summary.Failures != 3 || len(p.FailureDetails) != 2 {
		t.Fatalf("policy %s", j)
	}
	if fd := p.FailureDetails[0]; fd.Result != outbound.ResultExpired || fd.Count != 2 || fd.SendingIP != "192.0.2.1" || fd.ReceivingIP != "198.51.100.7" {
		t.Errorf("failure detail %+v", fd)
	}
	left, err := g.q.TLSReports("~")
	if err != nil || len(left) != 0 {
		t.Errorf("store after sending: %v %v", left, err)
	}
	select {
	case s := <-g.mails:
		t.Errorf("a second mail: %v", s.to)
	default:
	}
}

// TestTallySurvivesRestart: outcomes flushed to the queue file before a
// restart are in the report sent after it, added to the outcomes of the
// new process; what was recorded but not yet flushed at a clean stop is
// flushed by Run's return.
func TestTallySurvivesRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "q.db")
	dns := txtResolver{"_smtp._tls.dest.test": {"v=TLSRPTv1;rua=mailto:r@dest.test"}}
	g := newRig(t, path, dns, nil)
	g.record()
	if err := g.r.Flush(); err != nil {
		t.Fatal(err)
	}
	g.record()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g.r.Run(ctx) // sends nothing (the day is open), flushes at return
	g.q.Close()

	h := newRig(t, path, dns, nil)
	h.results.Record(outbound.TLSOutcome{Domain: "dest.test", Type: "sts"})
	if err := h.r.Flush(); err != nil {
		t.Fatal(err)
	}
	h.clock.Set(time.Date(2026, 3, 5, 0, 0, 1, 0, time.UTC))
	if err := h.r.SendDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := <-h.mails
	_, _, j := readMail(t, s.msg)
	validate(t, j)
	var rep Report
	json.Unmarshal(j, &rep)
	if p := rep.Policies[0]; p.Summary.Successes != 7 || p.Summary.Failures != 6 || p.FailureDetails[0].Count != 4 {
		t.Errorf("after restart: %s", j)
	}
}

// TestReportByHTTPS: an https rua gets a POST of the gzip-compressed
// report as application/tlsrpt+gzip through the injected client; a 5xx
// keeps the report for a retry, a 2xx deletes it, and one past
// GiveUpAfter is dropped.
func TestReportByHTTPS(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	status := http.StatusServiceUnavailable
	var bodies [][]byte
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != MediaType || r.URL.Path != "/v1/tlsrpt" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		bodies = append(bodies, b)
		w.WriteHeader(status)
	}))
	defer srv.Close()
	dns := txtResolver{
		"_smtp._tls.dest.test": {"v=TLSRPTv1;rua=" + srv.URL + "/v1/tlsrpt"},
		"_smtp._tls.dane.test": {"v=TLSRPTv1;rua=https://127.0.0.1:1/gone"},
	}
	g := newRig(t, filepath.Join(t.TempDir(), "q.db"), dns, srv.Client())
	g.record()
	if err := g.r.Flush(); err != nil {
		t.Fatal(err)
	}
	g.clock.Set(time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC))
	if err := g.r.SendDue(context.Background()); err == nil {
		t.Fatal("a 503 and a refused connection were taken as delivered")
	}
	if left, _ := g.q.TLSReports("~"); len(left) != 2 {
		t.Fatalf("kept for retry: %d tallies, want 2", len(left))
	}
	mu.Lock()
	status = http.StatusOK
	mu.Unlock()
	g.clock.Set(time.Date(2026, 3, 5, 1, 0, 0, 0, time.UTC))
	if err := g.r.SendDue(context.Background()); err == nil {
		t.Fatal("dane.test's refused connection was taken as delivered")
	}
	if left, _ := g.q.TLSReports("~"); len(left) != 1 {
		t.Fatalf("after the 200: %d tallies left, want 1 (dane.test's)", len(left))
	}
	mu.Lock()
	if len(bodies) != 2 {
		t.Fatalf("%d POSTs, want 2", len(bodies))
	}
	j := tlsrpttest.Gunzip(t, bodies[1])
	mu.Unlock()
	validate(t, j)
	// dane.test's destination never answers: dropped a day after the
	// period ended.
	g.clock.Set(time.Date(2026, 3, 6, 0, 0, 1, 0, time.UTC))
	if err := g.r.SendDue(context.Background()); err != nil {
		t.Fatalf("give-up round: %v", err)
	}
	if left, _ := g.q.TLSReports("~"); len(left) != 0 {
		t.Fatalf("after GiveUpAfter: %d tallies left", len(left))
	}
}

// TestReportSchemaCatchesMistakes: the schema is not vacuous.
func TestReportSchemaCatchesMistakes(t *testing.T) {
	t.Parallel()
	good := build(Identity{Org: "o", Contact: "c@s.test", Submitter: "s.test"}, "d.test", time.Unix(0, 0), time.Unix(86400, 0),
		map[string]*tally{"sts": {Successes: 1, Failures: []FailureDetail{{outbound.TLSFailureDetail{Result: "certificate-expired", ReceivingIP: "192.0.2.1"}, 1}}}})
	j, _ := json.Marshal(good)
	validate(t, j)
	for _, bad := range []string{
		strings.Replace(string(j), `"certificate-expired"`, `"expired"`, 1),
		strings.Replace(string(j), `"sts"`, `"dane"`, 1),
		strings.Replace(string(j), `"192.0.2.1"`, `"not-an-ip"`, 1),
		strings.Replace(string(j), `"report-id"`, `"reportid"`, 1),
		strings.Replace(string(j), `"1970-01-01T00:00:00Z"`, `"yesterday"`, 1),
	} {
		if !json.Valid([]byte(bad)) {
			t.Fatalf("not JSON: %s", bad)
		}
		if tlsrpttest.Validate([]byte(bad)) == nil {
			t.Errorf("schema accepts %s", bad)
		}
	}
}
