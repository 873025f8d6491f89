package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"sluice/relay/inbound"
)

// fakeMu guards every fakeSubmit (a table holds them by value).
var fakeMu sync.Mutex

// fakeSubmit is a Submitter with one user, token "secret".
type fakeSubmit struct {
	max        int64
	subs       []*inbound.Submission
	err        error // Submit's answer
	replay     bool
	reserved   int64
	reserveErr error
}

func (f *fakeSubmit) TokenUser(tok string) (inbound.User, bool) {
	if tok == "secret" {
		return inbound.User{Name: "app"}, true
	}
	return inbound.User{}, false
}
func (f *fakeSubmit) MaxMessageSize() int64 { return f.max }
func (f *fakeSubmit) Reserve(n int64) (func(), error) {
	fakeMu.Lock()
	defer fakeMu.Unlock()
	if f.reserveErr != nil {
		return nil, f.reserveErr
	}
	f.reserved += n
	return func() { fakeMu.Lock(); f.reserved -= n; fakeMu.Unlock() }, nil
}
func (f *fakeSubmit) Submit(_ context.Context, s *inbound.Submission) (inbound.Receipt, error) {
	fakeMu.Lock()
	defer fakeMu.Unlock()
	f.subs = append(f.subs, s)
	if f.err != nil {
		return inbound.Receipt{}, f.err
	}
	return inbound.Receipt{ID: "0123456789abcdef", Replayed: f.replay}, nil
}

const okBody = `{"from":"app@example.com","to":["a@example.net"],"subject":"hi","text":"hello"}`

func TestAPI(t *testing.T) {
	t.Parallel()
	raw := base64.StdEncoding.EncodeToString([]byte("From: app@example.com\nSubject: raw\n\nbody\n"))
	type req struct {
		method, path, ctype, auth, origin, key, body string
	}
	ok := func(mod func(*req)) req {
		r := req{"POST", "/v1/messages", "application/json", "Bearer secret", "", "", okBody}
		if mod != nil {
			mod(&r)
		}
		return r
	}
	tests := []struct {
		name    string
		r       req
		fake    fakeSubmit
		status  int
		reason  string
		header  [2]string
		submits int
	}{
		{"structured", ok(nil), fakeSubmit{}, 202, "", [2]string{}, 1},
		{"raw", ok(func(r *req) { r.body = `{"from":"app@example.com","to":["a@example.net"],"raw":"` + raw + `"}` }), fakeSubmit{}, 202, "", [2]string{}, 1},
		{"json with charset", ok(func(r *req) { r.ctype = "application/json; charset=utf-8" }), fakeSubmit{}, 202, "", [2]string{}, 1},
		{"bearer in lower case", ok(func(r *req) { r.auth = "bearer secret" }), fakeSubmit{}, 202, "", [2]string{}, 1},
		{"replay", ok(func(r *req) { r.key = "k-1" }), fakeSubmit{replay: true}, 202, "", [2]string{"Idempotent-Replayed", "true"}, 1},
		{"no token", ok(func(r *req) { r.auth = "" }), fakeSubmit{}, 401, "unauthorized", [2]string{"WWW-Authenticate", `Bearer realm="sluice"`}, 0},
		{"wrong token", ok(func(r *req) { r.auth = "Bearer nope" }), fakeSubmit{}, 401, "unauthorized", [2]string{"WWW-Authenticate", `Bearer realm="sluice", error="invalid_token"`}, 0},
		{"basic auth", ok(func(r *req) { r.auth = "Basic c2VjcmV0" }), fakeSubmit{}, 401, "unauthorized", [2]string{}, 0},
		{"cross-origin", ok(func(r *req) { r.origin = "https://evil.example" }), fakeSubmit{}, 403, "cross-origin", [2]string{}, 0},
		{"form post", ok(func(r *req) { r.ctype = "application/x-www-form-urlencoded" }), fakeSubmit{}, 415, "unsupported-media-type", [2]string{}, 0},
		{"multipart form", ok(func(r *req) { r.ctype = "multipart/form-data; boundary=x" }), fakeSubmit{}, 415, "unsupported-media-type", [2]string{}, 0},
		{"text/plain", ok(func(r *req) { r.ctype = "text/plain" }), fakeSubmit{}, 415, "unsupported-media-type", [2]string{}, 0},
		{"GET", ok(func(r *req) { r.method = "GET" }), fakeSubmit{}, 405, "method-not-allowed", [2]string{"Allow", "POST"}, 0},
		{"other path", ok(func(r *req) { r.path = "/v1/other" }), fakeSubmit{}, 404, "not-found", [2]string{}, 0},
		{"not json", ok(func(r *req) { r.body = "{from" }), fakeSubmit{}, 400, "bad-json", [2]string{}, 0},
		{"two objects", ok(func(r *req) { r.body = okBody + okBody }), fakeSubmit{}, 400, "bad-json", [2]string{}, 0},
		{"unknown member", ok(func(r *req) { r.body = `{"from":"a@b.c","to":["x@y.z"],"htlm":"x"}` }), fakeSubmit{}, 400, "bad-json", [2]string{}, 0},
		{"to not a list", ok(func(r *req) { r.body = `{"from":"a@b.c","to":"x@y.z","text":"x"}` }), fakeSubmit{}, 400, "bad-json", [2]string{}, 0},
		{"no recipient", ok(func(r *req) { r.body = `{"from":"a@b.c","to":[],"text":"x"}` }), fakeSubmit{}, 422, "invalid-message", [2]string{}, 0},
		{"header injection", ok(func(r *req) {
			r.body = `{"from":"a@b.c","to":["x@y.z"],"text":"x","headers":{"X-A":"1\r\nBcc: v@example.org"}}`
		}), fakeSubmit{}, 422, "invalid-message", [2]string{}, 0},
		{"bad key", ok(func(r *req) { r.key = strings.Repeat("k", 256) }), fakeSubmit{}, 400, "bad-idempotency-key", [2]string{}, 0},
		{"body too big", ok(func(r *req) { r.body = `{"from":"a@b.c","to":["x@y.z"],"text":"` + strings.Repeat("x", 3000) + `"}` }), fakeSubmit{max: 1000}, 413, "too-big", [2]string{}, 0},
		{"message too big", ok(func(r *req) { r.body = `{"from":"a@b.c","to":["x@y.z"],"text":"` + strings.Repeat("x", 1500) + `"}` }), fakeSubmit{max: 1000}, 413, "too-big", [2]string{}, 0},
		{"suppressed", ok(nil), fakeSubmit{err: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "recipient is on the suppression list"}}, 422, "suppressed", [2]string{}, 1},
		{"sender not allowed", ok(nil), fakeSubmit{err: &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender domain not allowed for this user"}}, 403, "sender-not-allowed", [2]string{}, 1},
		{"too big at submit", ok(nil), fakeSubmit{err: &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message size exceeds fixed limit"}}, 413, "too-big", [2]string{}, 1},
		{"dmarc reject", ok(nil), fakeSubmit{err: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 26}, Message: "DMARC policy"}}, 422, "refused", [2]string{}, 1},
		{"no space", ok(nil), fakeSubmit{err: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage"}}, 503, "try-again", [2]string{"Retry-After", "60"}, 1},
		{"in-flight budget", ok(nil), fakeSubmit{reserveErr: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Too much mail in transit"}}, 503, "try-again", [2]string{}, 0},
		{"rate", ok(nil), fakeSubmit{err: &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "rate"}}, 429, "rate-limited", [2]string{"Retry-After", "1"}, 1},
		{"key reused", ok(func(r *req) { r.key = "k" }), fakeSubmit{err: inbound.ErrIdempotencyMismatch}, 422, "idempotency-key-reused", [2]string{}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := tc.fake
			if f.max == 0 {
				f.max = 1 << 20
			}
			h := Handler(Options{Submit: &f})
			r := httptest.NewRequest(tc.r.method, tc.r.path, strings.NewReader(tc.r.body))
			for k, v := range map[string]string{"Content-Type": tc.r.ctype, "Authorization": tc.r.auth, "Origin": tc.r.origin, "Idempotency-Key": tc.r.key} {
				if v != "" {
					r.Header.Set(k, v)
				}
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if k := tc.header[0]; k != "" && w.Header().Get(k) != tc.header[1] {
				t.Errorf("%s = %q, want %q", k, w.Header().Get(k), tc.header[1])
			}
			if len(f.subs) != tc.submits {
				t.Errorf("%d submissions, want %d", len(f.subs), tc.submits)
			}
			if f.reserved != 0 {
				t.Errorf("%d bytes still reserved", f.reserved)
			}
			if tc.status == 202 {
				var a Accepted
				if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || a.ID != "0123456789abcdef" || a.Status != "queued" {
					t.Fatalf("body %s: %v", w.Body, err)
				}
				s := f.subs[0]
				if s.User != "app" || s.Protocol != "HTTP" || s.From != "app@example.com" || len(s.Rcpts) != 1 || s.IdempotencyKey != tc.r.key {
					t.Errorf("submission %+v", s)
				}
				if strings.Contains(string(s.Message), "\n") && strings.Count(string(s.Message), "\n") != strings.Count(string(s.Message), "\r\n") {
					t.Errorf("a bare LF in %q", s.Message)
				}
				return
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q", ct)
			}
			var p map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if p["status"] != float64(tc.status) || p["reason"] != tc.reason || p["title"] != http.StatusText(tc.status) {
				t.Errorf("problem %v, want status %d reason %q", p, tc.status, tc.reason)
			}
		})
	}
}

// TestProblemEscapesClientStrings: what the client sent comes back only
// JSON-escaped, never as markup.
func TestProblemEscapesClientStrings(t *testing.T) {
	t.Parallel()
	h := Handler(Options{Submit: &fakeSubmit{max: 1 << 20}})
	r := httptest.NewRequest("POST", "/v1/messages", strings.NewReader(`{"<script>alert(1)</script>":1}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer secret")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 400 || strings.Contains(w.Body.String(), "<script>") {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if !strings.Contains(w.Body.String(), `\u003cscript\u003e`) {
		t.Fatalf("the member is not named escaped: %s", w.Body)
	}
}
