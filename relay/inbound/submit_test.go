package inbound

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func apiUser(name, token string, allowed ...string) User {
	h := sha256.Sum256([]byte(token))
	return User{Name: name, TokenHash: h[:], AllowedFrom: allowed}
}

// TestSubmit: a submission meets the checks of an SMTP transaction, with
// the same replies, and an accepted one is stored as SMTP stores it
// (Received: with the API's protocol, Message-ID: and Date: added, the
// Checker's Prepend first).
func TestSubmit(t *testing.T) {
	t.Parallel()
	msg := []byte("From: app@example.com\r\nSubject: hi\r\n\r\nhello\r\n")
	loop := []byte(strings.Repeat("Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n", maxReceived+1) + "\r\nx\r\n")
	sub := func(mod func(*Submission)) *Submission {
		s := &Submission{From: "app@example.com", Rcpts: []string{"a@example.net"}, User: "app",
			Client: netip.MustParseAddr("192.0.2.7"), Protocol: "HTTPS", Message: msg}
		if mod != nil {
			mod(s)
		}
		return s
	}
	tests := []struct {
		name string
		sub  *Submission
		want *smtp.SMTPError
	}{
		{"accepted", sub(nil), nil},
		{"null sender, user without allowed_from", sub(func(s *Submission) { s.From = "" }), nil},
		{"sender domain not allowed", sub(func(s *Submission) { s.From = "x@other.example" }), errFromDomain},
		{"bad sender", sub(func(s *Submission) { s.From = "no at sign" }), errBadSender},
		{"bad recipient", sub(func(s *Submission) { s.Rcpts = []string{"a@example.net", "<>"} }), errBadAddr},
		{"address literal", sub(func(s *Submission) { s.Rcpts = []string{"a@[192.0.2.1]"} }), errLiteral},
		{"suppressed", sub(func(s *Submission) { s.Rcpts = []string{"gone@example.net"} }), errSuppressed},
		{"no recipients", sub(func(s *Submission) { s.Rcpts = nil }), errNoRcpts},
		{"too many recipients", sub(func(s *Submission) { s.Rcpts = []string{"a@x.test", "b@x.test", "c@x.test"} }), errTooManyRcpts},
		{"too big", sub(func(s *Submission) { s.Message = []byte("Subject: x\r\n\r\n" + strings.Repeat("x", 5000)) }), errTooBig},
		{"bare LF", sub(func(s *Submission) { s.Message = []byte("Subject: x\n\nbody\n") }), errBareLF},
		{"loop", sub(func(s *Submission) { s.Message = loop }), errLoop},
		{"user gone", sub(func(s *Submission) { s.User = "nobody" }), errNotAUser},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := &fakeStore{}
			var results []string
			o := testOptions(Options{Store: st, MaxRecipients: 2, MaxMessageSize: 4096,
				Users:      []User{apiUser("app", "tok", "example.com"), apiUser("any", "tok2")},
				Suppressed: func(a string) bool { return a == "gone@example.net" },
				Check: checkFunc(func(_ context.Context, m *Message) error {
					m.Prepend = []byte("DKIM-Signature: v=1\r\n")
					return nil
				}),
				OnResult: func(ok bool, reason string, _ time.Duration) { results = append(results, reason) },
			})
			if tc.name == "null sender, user without allowed_from" {
				tc.sub.User = "any"
			}
			s, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := s.Submit(context.Background(), tc.sub)
			if tc.want != nil {
				if err != tc.want {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if len(st.all()) != 0 {
					t.Fatal("a refused submission was stored")
				}
				if len(results) != 1 || results[0] == "" {
					t.Errorf("OnResult saw %q", results)
				}
				return
			}
			if err != nil || rc.ID == "" || rc.Replayed {
				t.Fatalf("Submit = %+v, %v", rc, err)
			}
			if !st.allDiscarded() {
				t.Error("a spool was not discarded")
			}
			m := st.all()[0]
			body := string(m.Body)
			for _, want := range []string{"DKIM-Signature: v=1\r\nReceived: from unknown ([192.0.2.7])\r\n\tby " + testHost + " with HTTPS id ", "\r\nMessage-ID: <", "\r\nDate: ", "\r\n\r\nhello\r\n"} {
				if !strings.Contains(body, want) {
					t.Errorf("stored message lacks %q:\n%s", want, body)
				}
			}
			if m.User != tc.sub.User || m.ClientAddr != tc.sub.Client {
				t.Errorf("stored %+v", m.Message)
			}
			if len(results) != 1 || results[0] != "" {
				t.Errorf("OnResult saw %q, want one acceptance", results)
			}
		})
	}
}

// idemStore is a fakeStore that remembers idempotency keys, as the
// queue does.
type idemStore struct {
	fakeStore
	keys map[string]string
}

func (s *idemStore) Idempotent(key string, fp [32]byte) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.keys[key]; ok {
		return id, nil
	}
	return "", errors.New("not found")
}

func (s *idemStore) Enqueue(ctx context.Context, m *Message) (string, error) {
	id, err := s.fakeStore.Enqueue(ctx, m)
	if err == nil && m.IdempotencyKey != "" {
		s.mu.Lock()
		s.keys[m.IdempotencyKey] = id
		s.mu.Unlock()
	}
	return id, err
}

// TestSubmitIdempotencyScopedByUser: a key is the user's own: the same
// key from the same user is a replay, from another user a new message.
func TestSubmitIdempotencyScopedByUser(t *testing.T) {
	t.Parallel()
	st := &idemStore{keys: map[string]string{}}
	s, err := New(testOptions(Options{Store: st, Users: []User{apiUser("a", "t1"), apiUser("b", "t2")}}))
	if err != nil {
		t.Fatal(err)
	}
	post := func(user string) Receipt {
		rc, err := s.Submit(context.Background(), &Submission{From: "x@example.com", Rcpts: []string{"y@example.net"},
			User: user, Protocol: "HTTP", Message: []byte("Subject: x\r\n\r\nx\r\n"), IdempotencyKey: "k"})
		if err != nil {
			t.Fatal(err)
		}
		return rc
	}
	first := post("a")
	again := post("a")
	other := post("b")
	if first.Replayed || !again.Replayed || again.ID != first.ID || other.Replayed || other.ID == first.ID {
		t.Fatalf("first %+v, again %+v, other user %+v", first, again, other)
	}
	if n := len(st.all()); n != 2 {
		t.Fatalf("%d messages stored, want 2", n)
	}
}

// TestTokenUser: the user is found by the SHA-256 of the token; a user
// without a token, an empty token or a wrong one is nobody.
func TestTokenUser(t *testing.T) {
	t.Parallel()
	s, err := New(testOptions(Options{Users: []User{testUser(t, "smtp-only", "pw"), apiUser("app", "tok-app"), apiUser("b", "tok-b")}}))
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]string{"tok-app": "app", "tok-b": "b", "": "", "tok": "", "pw": ""} {
		u, ok := s.TokenUser(tok)
		if ok != (want != "") || u.Name != want {
			t.Errorf("TokenUser(%q) = %q, %v; want %q", tok, u.Name, ok, want)
		}
	}
}

// TestTokenIsNoSMTPPassword: an API-only user (no password hash) cannot
// AUTH over SMTP, neither with an empty password nor with the token.
func TestTokenIsNoSMTPPassword(t *testing.T) {
	t.Parallel()
	cfg, pool := testTLS(t)
	addr, _, _ := startServer(t, Options{Networks: elsewhere, TLSConfig: cfg, Users: []User{apiUser("app", "tok")}})
	c := dial(t, addr)
	c.hello()
	c.startTLS(pool)
	c.cmd("AUTH PLAIN "+plain("app", "tok"), "535")
	c.cmd("AUTH PLAIN "+plain("app", ""), "535")
}

// TestSubmitKeepsTheWholeMessage: a submission longer than the first
// read of its header section is stored whole. (The body past the first
// 8 KB read used to be dropped: found by the content lint, which saw
// every HTTP API newsletter as a multipart without its end.)
func TestSubmitKeepsTheWholeMessage(t *testing.T) {
	t.Parallel()
	for _, size := range []int{100, 8 << 10, 50 << 10, 1 << 20} {
		msg := []byte("From: app@example.com\r\nSubject: big\r\n\r\n" + strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n", size/74+1))
		st := &fakeStore{}
		s, err := New(testOptions(Options{Store: st, MaxMessageSize: 2 << 20, Users: []User{apiUser("app", "tok")}}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Submit(context.Background(), &Submission{From: "app@example.com", Rcpts: []string{"a@example.net"}, User: "app",
			Client: netip.MustParseAddr("192.0.2.7"), Protocol: "HTTPS", Message: msg}); err != nil {
			t.Fatal(err)
		}
		body := st.all()[0].Body
		_, want, _ := strings.Cut(string(msg), "\r\n\r\n")
		if _, got, _ := strings.Cut(string(body), "\r\n\r\n"); got != want {
			t.Errorf("%d-byte message stored as %d bytes: the body is cut; head %q", len(msg), len(body), body[:min(len(body), 400)])
		}
	}
}
