package mtasts

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"sluice/internal/dnstest"
	"sluice/internal/fakeclock"
	"sluice/internal/testca"
	"sluice/relay/outbound"
	"sluice/resolver"
)

// policyServer is the HTTPS side of MTA-STS on loopback: it serves
// /.well-known/mta-sts.txt for the mta-sts.<domain> hosts its
// certificate names, from a body the test changes; the fetcher reaches
// it through an injected dialer (no port 443).
type policyServer struct {
	srv     *httptest.Server
	ca      *testca.CA
	mu      sync.Mutex
	body    map[string]string // host -> body
	ctype   string
	status  int
	down    atomic.Bool
	fetches atomic.Int32
}

func newPolicyServer(t *testing.T, names ...string) *policyServer {
	t.Helper()
	ca, err := testca.New(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(time.Now().Add(-time.Hour), time.Now().Add(time.Hour), names...)
	if err != nil {
		t.Fatal(err)
	}
	ps := &policyServer{ca: ca, body: map[string]string{}, ctype: "text/plain; charset=utf-8", status: 200}
	ps.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.fetches.Add(1)
		if r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		ps.mu.Lock()
		body, ctype, status := ps.body[r.Host], ps.ctype, ps.status
		ps.mu.Unlock()
		if status == http.StatusFound {
			http.Redirect(w, r, "https://elsewhere.test/policy.txt", status)
			return
		}
		w.Header().Set("Content-Type", ctype)
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	ps.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ps.srv.Config.ErrorLog = nil
	ps.srv.StartTLS()
	t.Cleanup(ps.srv.Close)
	return ps
}

func (ps *policyServer) set(host, body string) {
	ps.mu.Lock()
	ps.body[host] = body
	ps.mu.Unlock()
}

// client fetches through the test CA, every address dialled to the
// server (or refused while it is down).
func (ps *policyServer) client() *http.Client {
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		if ps.down.Load() {
			return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused")}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, ps.srv.Listener.Addr().String())
	}
	return NewHTTPClient(ps.ca.Pool, dial, 5*time.Second)
}

// memStore is a Store in memory.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStore) LoadSTSPolicy(d string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[d], nil
}
func (s *memStore) SaveSTSPolicy(d string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[d] = v
	return nil
}
func (s *memStore) DeleteSTSPolicy(d string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, d)
	return nil
}

type fixture struct {
	zone  *dnstest.Zone
	clock *fakeclock.Clock
	ps    *policyServer
	store *memStore
	c     *Cache
	// results tallies failed fetches for TLS-RPT.
	results *outbound.TLSResults
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{zone: dnstest.NewZone(), clock: fakeclock.New(), store: &memStore{m: map[string][]byte{}}, results: outbound.NewTLSResults()}
	f.ps = newPolicyServer(t, "mta-sts.example.test", "mta-sts.other.test")
	f.c = f.newCache(t)
	return f
}

func (f *fixture) newCache(t *testing.T) *Cache {
	t.Helper()
	r, err := resolver.New(resolver.Options{Transport: dnstest.NewInProcess(f.zone, false), Workers: 4,
		MinTTL: time.Second, MaxTTL: time.Minute, MaxEntries: 100, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	c, err := New(Options{Resolver: r, HTTP: f.ps.client(), Store: f.store, Now: f.clock.Now,
		Logger: slog.New(slog.DiscardHandler), Results: f.results})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) txt(domain, rec string) {
	f.zone.Remove("_mta-sts." + domain)
	if rec != "" {
		f.zone.Add(fmt.Sprintf("_mta-sts.%s. 60 IN TXT %q", domain, rec))
	}
}

// publish gives domain an STSv1 TXT record with id and serves body as
// its policy.
func (f *fixture) publish(domain, id, body string) {
	f.txt(domain, "v=STSv1; id="+id+";")
	f.ps.set("mta-sts."+domain, body)
}

func policyText(mode string, maxAge int, mx ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: STSv1\nmode: %s\n", mode)
	for _, m := range mx {
		fmt.Fprintf(&b, "mx: %s\n", m)
	}
	fmt.Fprintf(&b, "max_age: %d\n", maxAge)
	return b.String()
}

func TestPolicyFetchedAndCached(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.publish("example.test", "1", policyText("enforce", 86400, "mx.example.test", "*.mx.example.test"))
	p := f.c.Policy(ctx, "Example.TEST.")
	if p == nil || p.Mode != ModeEnforce || len(p.MX) != 2 {
		t.Fatalf("policy = %+v", p)
	}
	if p := f.c.Policy(ctx, "example.test"); p == nil || f.ps.fetches.Load() != 1 {
		t.Fatalf("second use: %+v after %d fetches, want the cached policy", p, f.ps.fetches.Load())
	}
	// No TXT record: no policy, nothing fetched.
	if p := f.c.Policy(ctx, "none.test"); p != nil || f.ps.fetches.Load() != 1 {
		t.Fatalf("domain without TXT: %+v, %d fetches", p, f.ps.fetches.Load())
	}
	// A restart reads it from the store: no fetch.
	c2 := f.newCache(t)
	if p := c2.Policy(ctx, "example.test"); p == nil || p.Mode != ModeEnforce || f.ps.fetches.Load() != 1 {
		t.Fatalf("after restart: %+v, %d fetches", p, f.ps.fetches.Load())
	}
}

// TestPolicyChangesBetweenFetches: a new TXT id fetches the new policy
// (RFC 8461 §3.1); the same id does not.
func TestPolicyChangesBetweenFetches(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.publish("example.test", "1", policyText("testing", 86400, "old.example.test"))
	if p := f.c.Policy(ctx, "example.test"); p == nil || p.Mode != ModeTesting || !p.Match("old.example.test") {
		t.Fatalf("first policy = %+v", p)
	}
	f.ps.set("mta-sts.example.test", policyText("enforce", 86400, "new.example.test"))
	f.clock.Advance(2 * time.Minute) // past the TXT record's TTL
	if p := f.c.Policy(ctx, "example.test"); p == nil || p.Mode != ModeTesting {
		t.Fatalf("same id: %+v, want the cached policy", p)
	}
	f.txt("example.test", "v=STSv1; id=2;")
	f.clock.Advance(2 * time.Minute)
	p := f.c.Policy(ctx, "example.test")
	if p == nil || p.Mode != ModeEnforce || !p.Match("new.example.test") || p.Match("old.example.test") {
		t.Fatalf("new id: %+v, want the new policy", p)
	}
	if n := f.ps.fetches.Load(); n != 2 {
		t.Errorf("fetches = %d, want 2", n)
	}
}

// TestPolicyServerDown: with nothing cached, a policy server that is down
// means no policy (RFC 8461 §3.3); with a policy cached, a failed refresh
// keeps it until max_age; a failure is not retried for RetryFetch.
func TestPolicyServerDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.publish("example.test", "1", policyText("enforce", 3600, "mx.example.test"))
	f.ps.down.Store(true)
	if p := f.c.Policy(ctx, "example.test"); p != nil {
		t.Fatalf("server down, nothing cached: %+v, want none", p)
	}
	f.ps.down.Store(false)
	if p := f.c.Policy(ctx, "example.test"); p != nil {
		t.Fatalf("within RetryFetch of the failure: %+v, want none and no fetch", p)
	}
	f.clock.Advance(RetryFetch)
	if p := f.c.Policy(ctx, "example.test"); p == nil {
		t.Fatal("server back: no policy")
	}
	// The policy changes and the server goes down: the cached one stays.
	f.ps.down.Store(true)
	f.txt("example.test", "v=STSv1; id=2;")
	f.clock.Advance(2 * time.Minute)
	if p := f.c.Policy(ctx, "example.test"); p == nil || p.Mode != ModeEnforce {
		t.Fatalf("refresh failed: %+v, want the cached policy", p)
	}
	// So does a TXT record that disappears (a DNS attack cannot lift it).
	f.txt("example.test", "")
	f.clock.Advance(2 * time.Minute)
	if p := f.c.Policy(ctx, "example.test"); p == nil {
		t.Fatal("TXT gone: the cached policy was dropped before max_age")
	}
	// Past max_age it is gone.
	f.clock.Advance(time.Hour)
	if p := f.c.Policy(ctx, "example.test"); p != nil {
		t.Fatalf("past max_age: %+v", p)
	}
	if len(f.store.m) != 0 {
		t.Errorf("expired policy still stored: %v", f.store.m)
	}
}

// TestPolicyRefreshBeforeExpiry: once three quarters of max_age have
// passed the policy is fetched again, with the same id, and its
// lifetime starts over.
func TestPolicyRefreshBeforeExpiry(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.publish("example.test", "1", policyText("enforce", 4000, "mx.example.test"))
	f.c.Policy(ctx, "example.test")
	f.clock.Advance(2999 * time.Second)
	f.c.Policy(ctx, "example.test")
	if n := f.ps.fetches.Load(); n != 1 {
		t.Fatalf("fetches = %d before the refresh point", n)
	}
	f.clock.Advance(2 * time.Second)
	f.c.Policy(ctx, "example.test")
	if n := f.ps.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want a refresh", n)
	}
	f.clock.Advance(2000 * time.Second) // past the first fetch's max_age
	if p := f.c.Policy(ctx, "example.test"); p == nil {
		t.Fatal("the refreshed policy expired with the old one")
	}
}

// TestFetchRefusals: what RFC 8461 §3.3 refuses is no policy.
func TestFetchRefusals(t *testing.T) {
	t.Parallel()
	big := policyText("enforce", 60, "a.b") + "x: " + strings.Repeat("y", MaxPolicySize) + "\n"
	// result: how TLS-RPT counts the failed fetch (RFC 8460 §4.3.2.2).
	tests := []struct {
		name, domain, body, ctype string
		status                    int
		result                    string
	}{
		{name: "certificate for another name", domain: "third.test", result: "sts-webpki-invalid"}, // the server's certificate does not name mta-sts.third.test
		{name: "redirect", domain: "example.test", status: http.StatusFound, result: "sts-policy-fetch-error"},
		{name: "404", domain: "example.test", status: http.StatusNotFound, result: "sts-policy-fetch-error"},
		{name: "media type", domain: "example.test", ctype: "text/html", result: "sts-policy-fetch-error"},
		{name: "syntax", domain: "example.test", body: "version: STSv1\nmode: enforce\n", result: "sts-policy-invalid"},
		{name: "too big", domain: "example.test", body: big, result: "sts-policy-invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			body := policyText("enforce", 60, "mx.example.test")
			if tt.body != "" {
				body = tt.body
			}
			f.publish(tt.domain, "1", body)
			f.ps.mu.Lock()
			if tt.status != 0 {
				f.ps.status = tt.status
			}
			if tt.ctype != "" {
				f.ps.ctype = tt.ctype
			}
			f.ps.mu.Unlock()
			if p := f.c.Policy(context.Background(), tt.domain); p != nil {
				t.Fatalf("policy = %+v, want none", p)
			}
			// Once per fetch, not per use: the next use within
			// RetryFetch does not fetch, nor count, again.
			f.c.Policy(context.Background(), tt.domain)
			_, tally := f.results.Snapshot()
			if c := tally[outbound.TLSPolicyKey{Domain: tt.domain, Type: "sts"}]; c.Failures[tt.result] != 1 || len(c.Failures) != 1 {
				t.Errorf("TLS-RPT tally %+v, want one %s", tally, tt.result)
			}
		})
	}
}

// TestTXTRecords: RFC 8461 §3.1's reading of the TXT RRset.
func TestTXTRecords(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.ps.set("mta-sts.example.test", policyText("enforce", 60, "mx.example.test"))
	f.zone.Add(`_mta-sts.example.test. 60 IN TXT "v=spf1 -all"`, `_mta-sts.example.test. 60 IN TXT "v=STSv1; " "id=1;"`)
	if id, err := f.c.lookupID(context.Background(), "example.test"); err != nil || id != "1" {
		t.Fatalf("id = %q, %v (other records ignored, strings joined)", id, err)
	}
	f.zone.Add(`_mta-sts.two.test. 60 IN TXT "v=STSv1; id=1;"`, `_mta-sts.two.test. 60 IN TXT "v=STSv1; id=2;"`)
	if _, err := f.c.lookupID(context.Background(), "two.test"); err == nil {
		t.Fatal("two STSv1 records: want no policy")
	}
	f.zone.Fail("_mta-sts.fail.test", dns.RcodeServerFailure)
	if p := f.c.Policy(context.Background(), "fail.test"); p != nil {
		t.Fatalf("SERVFAIL, nothing cached: %+v", p)
	}
}

// TestTLSFor: the MTA-STS source of the outbound precedence.
func TestTLSFor(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.publish("example.test", "1", policyText("enforce", 86400, "mx.example.test"))
	f.publish("other.test", "1", policyText("testing", 86400, "mx.other.test"))
	req, ok, err := f.c.TLSFor(ctx, "example.test", "MX.example.test.", 25)
	if err != nil || !ok || req.Mode != outbound.TLSVerify || req.ReportOnly || req.ServerName != "mx.example.test" || req.PolicyType != "sts" {
		t.Fatalf("enforce, matching MX: %+v %v %v", req, ok, err)
	}
	var pf *outbound.PolicyFailure
	if _, _, err := f.c.TLSFor(ctx, "example.test", "evil.test", 25); !errors.As(err, &pf) || pf.Type != "sts" {
		t.Fatalf("enforce, MX outside the policy: %v, want an sts policy failure", err)
	}
	req, ok, err = f.c.TLSFor(ctx, "other.test", "evil.test", 25)
	if err != nil || !ok || !req.ReportOnly {
		t.Fatalf("testing, MX outside the policy: %+v %v %v, want report-only", req, ok, err)
	}
	if _, ok, err := f.c.TLSFor(ctx, "none.test", "mx.none.test", 25); ok || err != nil {
		t.Fatalf("no policy: ok=%v err=%v", ok, err)
	}
}

// TestExpiredAt: the pruner's predicate reads the stored entry.
func TestExpiredAt(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.publish("example.test", "1", policyText("enforce", 3600, "mx.example.test"))
	if f.c.Policy(context.Background(), "example.test") == nil {
		t.Fatal("no policy")
	}
	v := f.store.m["example.test"]
	if ExpiredAt(f.clock.Now())(v) {
		t.Error("a fresh policy reads as expired")
	}
	if !ExpiredAt(f.clock.Now().Add(time.Hour))(v) {
		t.Error("a policy past max_age reads as unexpired")
	}
	if !ExpiredAt(f.clock.Now())([]byte("garbage")) {
		t.Error("an undecodable entry is kept")
	}
}

// TestBackgroundRefresh: Refresh fetches the policies past their
// refresh point without a delivery asking (RFC 8461 §3.3), keeps the
// cached one when the fetch fails, and leaves the others alone.
func TestBackgroundRefresh(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.publish("example.test", "1", policyText("enforce", 4000, "mx.example.test"))
	f.publish("other.test", "1", policyText("enforce", 40000, "mx.other.test"))
	f.c.Policy(ctx, "example.test")
	f.c.Policy(ctx, "other.test")
	if n := f.c.Refresh(ctx); n != 0 || f.ps.fetches.Load() != 2 {
		t.Fatalf("Refresh before anything is due: %d due, %d fetches", n, f.ps.fetches.Load())
	}
	f.clock.Advance(3001 * time.Second)
	if n := f.c.Refresh(ctx); n != 1 || f.ps.fetches.Load() != 3 {
		t.Fatalf("Refresh past example.test's refresh point: %d due, %d fetches; want 1, 3", n, f.ps.fetches.Load())
	}
	// Its lifetime starts over: still in force after the first max_age.
	f.clock.Advance(2000 * time.Second)
	f.ps.down.Store(true)
	f.c.Refresh(ctx) // other.test is not due; example.test is not either
	if p := f.c.Policy(ctx, "example.test"); p == nil || p.Mode != ModeEnforce {
		t.Fatalf("policy after the background refresh: %+v", p)
	}
	// Due again with the server down: the cached policy stays.
	f.clock.Advance(1500 * time.Second)
	if n := f.c.Refresh(ctx); n != 1 {
		t.Fatalf("%d due, want 1", n)
	}
	if p := f.c.Policy(ctx, "example.test"); p == nil {
		t.Fatal("a failed background refresh dropped the cached policy")
	}
}
