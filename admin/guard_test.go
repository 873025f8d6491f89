package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"sluice/policy"
	"sluice/queue"
	"sluice/reply"
)

// TestAPIGuards: what a web page can make the operator's browser send to
// the admin API (a "simple" cross-origin POST, a rebound name, a form
// body) changes nothing; the CLI's own requests pass.
func TestAPIGuards(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := New(Options{Queue: f.q, Policy: f.pol, Telemetry: f.tel, Token: "s3cret", Now: f.clk.Now, Logger: quietLog()})
	srv.apiAddr = "127.0.0.1:3599" // as ListenAPI records it
	h := srv.APIHandler()
	id := f.enqueue(t, "a@src.test", "b@dest.test")
	del := `{"ids":["` + id + `"]}`

	tests := []struct {
		name, method, path, body, ctype, origin, token string
		want                                           int
	}{
		{"cross-origin simple POST without token", "POST", "/v1/queue/delete", del, "text/plain", "http://evil.example", "", 403},
		{"same request without Origin (curl)", "POST", "/v1/queue/delete", del, "text/plain", "", "", 401},
		{"wrong token", "POST", "/v1/queue/delete", del, "application/json", "", "guess", 401},
		{"text/plain body with token", "POST", "/v1/queue/delete", del, "text/plain", "", "s3cret", 415},
		{"form body with token", "POST", "/v1/queue/delete", "ids=" + id, "application/x-www-form-urlencoded", "", "s3cret", 415},
		{"no content type with token", "POST", "/v1/queue/delete", del, "", "", "s3cret", 415},
		{"DELETE without content type", "DELETE", "/v1/suppress/x@dest.test", "", "", "", "s3cret", 415},
		{"foreign Origin with token and JSON", "POST", "/v1/queue/delete", del, "application/json", "http://evil.example", "s3cret", 403},
		{"rebound name as Origin", "POST", "/v1/queue/delete", del, "application/json", "http://rebind.evil.example:3599", "s3cret", 403},
		{"null Origin", "GET", "/v1/status", "", "", "null", "s3cret", 403},
		{"own Origin", "POST", "/v1/queue/flush", "{}", "application/json; charset=utf-8", "http://127.0.0.1:3599", "s3cret", 200},
		{"localhost Origin of a loopback bind", "GET", "/v1/status", "", "", "http://localhost:3599", "s3cret", 200},
		{"CLI read", "GET", "/v1/status", "", "", "", "s3cret", 200},
		// The backup hands out every message: the guards of a change.
		{"cross-origin backup", "POST", "/v1/queue/backup", "{}", "text/plain", "http://evil.example", "", 403},
		{"backup without token", "POST", "/v1/queue/backup", "{}", "application/json", "", "", 401},
		{"backup as a form", "POST", "/v1/queue/backup", "", "application/x-www-form-urlencoded", "", "s3cret", 415},
		{"backup by GET", "GET", "/v1/queue/backup", "", "", "", "s3cret", 404},
		{"backup", "POST", "/v1/queue/backup", "{}", "application/json", "", "s3cret", 200},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		r.Host = "127.0.0.1:3599"
		if tc.ctype != "" {
			r.Header.Set("Content-Type", tc.ctype)
		}
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if tc.token != "" {
			r.Header.Set("Authorization", "Bearer "+tc.token)
		}
		if rec := httptestRecorder(h, r); rec.Code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, rec.Code, strings.TrimSpace(rec.Body.String()), tc.want)
		}
	}
	m, err := f.q.Get(id)
	if err != nil || m.Recipients[0].State != queue.StateQueued {
		t.Fatalf("the message was touched by refused requests: %+v %v", m, err)
	}
}

// TestHostGuard: the HTTP listener answers only to the Hosts it knows,
// so that a rebound DNS name (the attack that turns a foreign page into
// a same-origin reader of 127.0.0.1) gets 421.
func TestHostGuard(t *testing.T) {
	t.Parallel()
	tests := []struct {
		bound string
		allow []string
		host  string
		ok    bool
	}{
		{"127.0.0.1:8025", nil, "127.0.0.1:8025", true},
		{"127.0.0.1:8025", nil, "localhost:8025", true},
		{"127.0.0.1:8025", nil, "LocalHost.:8025", true},
		{"127.0.0.1:8025", nil, "rebind.evil.example:8025", false},
		{"127.0.0.1:8025", nil, "127.0.0.1", false}, // port 80
		{"127.0.0.1:8025", nil, "127.0.0.2:8025", false},
		{"127.0.0.1:8025", nil, "", false},
		{"127.0.0.1:8025", []string{"dash.example"}, "dash.example", true}, // behind a proxy
		{"[::1]:8025", nil, "[::1]:8025", true},
		{"[::1]:8025", nil, "localhost:8025", true},
		{"[::1]:8025", nil, "127.0.0.1:8025", false},
		{"0.0.0.0:8025", nil, "relay.example.com:8025", false},
		{"0.0.0.0:8025", nil, "10.1.2.3:8025", true}, // an IP literal cannot be rebound
		{"0.0.0.0:8025", nil, "localhost:8025", false},
		{"0.0.0.0:8025", []string{"relay.example.com"}, "relay.example.com:8025", true},
		{"0.0.0.0:8025", []string{"relay.example.com"}, "Relay.Example.Com.", true},
		{"0.0.0.0:8025", []string{"relay.example.com"}, "relay.example.com.evil.example:8025", false},
		{"10.0.0.5:8025", nil, "10.0.0.5:8025", true},
		{"10.0.0.5:8025", nil, "10.0.0.6:8025", false},
		{"10.0.0.5:8025", []string{"dash.example:443"}, "dash.example:443", true},
		{"10.0.0.5:8025", []string{"dash.example:443"}, "dash.example:8025", false},
		{"[::]:8025", []string{"[2001:db8::1]:8025"}, "[2001:db8::1]:8025", true},
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	for _, tc := range tests {
		h := hostGuard(tc.bound, tc.allow, ok)
		r := httptest.NewRequest("GET", "/readyz", nil)
		r.Host = tc.host
		rec := httptestRecorder(h, r)
		if got := rec.Code == http.StatusOK; got != tc.ok {
			t.Errorf("bound %s allow %v Host %q: %d, want ok=%v", tc.bound, tc.allow, tc.host, rec.Code, tc.ok)
		}
		if !tc.ok && rec.Code != http.StatusMisdirectedRequest {
			t.Errorf("Host %q refused with %d, want 421", tc.host, rec.Code)
		}
	}
}

// TestPublicDashboardHasNoAddresses: the unauthenticated dashboard data
// and /readyz carry counts and domains, never a mail address, even when a
// receiver quoted one in its reply; the authenticated API keeps it.
func TestPublicDashboardHasNoAddresses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.enqueue(t, "sender@src.test", "jane.doe@dest.test")
	f.pol.Observe("dest.test", policy.Outcome{Reply: reply.Reply{Stage: reply.StageRcpt, Code: 450, Enhanced: "4.2.1",
		Text: `<jane.doe@dest.test>: mailbox busy; also "x y"@dest.test`}, Rcpt: "jane.doe@dest.test", Attempts: 1, Queued: f.clk.Now()})
	api := httptestGet(t, f.srv.APIHandler(), "/v1/dashboard").Body.String()
	if !strings.Contains(api, "jane.doe@dest.test") {
		t.Fatalf("test setup: the reply text is not in the dashboard data:\n%s", api)
	}
	for _, path := range []string{"/v1/dashboard", "/readyz"} {
		rec := httptestGet(t, f.srv.HTTPHandler("127.0.0.1:8025"), path)
		body := rec.Body.String()
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, rec.Code, body)
		}
		for _, leak := range []string{"jane", "sender@", `"x y"`} {
			if strings.Contains(body, leak) {
				t.Errorf("%s carries %q:\n%s", path, leak, body)
			}
		}
		if path == "/v1/dashboard" && !strings.Contains(body, "…@dest.test") {
			t.Errorf("%s: the reply lost more than the local part:\n%s", path, body)
		}
	}
}

func TestRedactAddrs(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"550 5.1.1 <jane@example.com>: Recipient address rejected", "550 5.1.1 <…@example.com>: Recipient address rejected"},
		{`550 "john@doe"@example.org unknown`, `550 …@example.org unknown`},
		{"421 4.7.0 try later", "421 4.7.0 try later"},
		{"to=a.b+c@[192.0.2.1] x@y", "…@[192.0.2.1] …@y"}, // "to=" is atext: over-redacting is fine
	}
	for _, tc := range tests {
		if got := redactAddrs(tc.in); got != tc.want {
			t.Errorf("redactAddrs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
