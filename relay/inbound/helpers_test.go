package inbound

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"sluice/internal/fakeclock"
	"sluice/internal/selfsigned"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"sluice/config"
)

// fakeClock is the shared test clock (internal/fakeclock).
type fakeClock = fakeclock.Clock

func newClock() *fakeClock { return fakeclock.New() }

// fakeStore is an in-memory Store that can be told to fail.
type fakeStore struct {
	mu       sync.Mutex
	msgs     []*storedMsg
	fail     error
	spoolErr error // every spool write fails with it
	spools   []*memSpool
	maxWrite int // largest single spool write seen
}

// storedMsg is an accepted message with its stored bytes (Prepend and
// Content), read at Enqueue time.
type storedMsg struct {
	*Message
	Body []byte
}

// memSpool is a Spool in memory.
type memSpool struct {
	bytes.Buffer
	st        *fakeStore
	discarded bool
}

func (s *memSpool) Write(p []byte) (int, error) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	if s.st.spoolErr != nil {
		return 0, s.st.spoolErr
	}
	s.st.maxWrite = max(s.st.maxWrite, len(p))
	return s.Buffer.Write(p)
}

func (s *memSpool) Len() int64 { return int64(s.Buffer.Len()) }
func (s *memSpool) Open() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(s.Bytes())), nil
}
func (s *memSpool) Discard() {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	s.discarded = true
}

func (f *fakeStore) NewSpool() Spool {
	f.mu.Lock()
	defer f.mu.Unlock()
	sp := &memSpool{st: f}
	f.spools = append(f.spools, sp)
	return sp
}

// allDiscarded reports whether every spool handed out was discarded.
func (f *fakeStore) allDiscarded() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, sp := range f.spools {
		if !sp.discarded {
			return false
		}
	}
	return true
}

func (f *fakeStore) Enqueue(_ context.Context, m *Message) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return "", f.fail
	}
	body := append(bytes.Clone(m.Prepend), m.Content.(*memSpool).Bytes()...)
	f.msgs = append(f.msgs, &storedMsg{Message: m, Body: body})
	return "Q" + string(rune('0'+len(f.msgs))), nil
}

func (f *fakeStore) all() []*storedMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*storedMsg(nil), f.msgs...)
}

const testHost = "mx.sluice.test"

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// startServer runs a Server on 127.0.0.1:0 with sensible test defaults
// (loopback may relay) and returns its address.
// testOptions are the daemon's inbound options from the default config
// (OptionsFrom(config.Default())) with the test hostname, loopback
// networks, a fake store and a silent log, overlaid with every field o
// sets: a test names what it changes. To test a zero, change the result.
func testOptions(o Options) Options {
	base, err := OptionsFrom(config.Default())
	if err != nil {
		panic(err)
	}
	base.Hostname, base.Networks, base.Store = testHost, loopback, &fakeStore{}
	base.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	bv, ov := reflect.ValueOf(&base).Elem(), reflect.ValueOf(o)
	for i := range ov.NumField() {
		if f := ov.Field(i); !f.IsZero() {
			bv.Field(i).Set(f)
		}
	}
	return base
}

func startServer(t *testing.T, o Options) (string, *Server, *fakeStore) {
	t.Helper()
	o = testOptions(o)
	st, _ := o.Store.(*fakeStore)
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve returned %v after Shutdown", err)
		}
	})
	return l.Addr().String(), s, st
}

// client is a raw SMTP transcript driver.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// A safety net against hangs, never a synchronisation device.
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// reply reads one (possibly multi-line) reply; "" on EOF.
func (c *client) reply() string {
	c.t.Helper()
	var b strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String()
		}
		if len(line) < 4 || line[3] == ' ' {
			return b.String()
		}
	}
}

// expect reads a reply and checks its prefix (e.g. "250" or "553 5.1.3").
func (c *client) expect(prefix string) string {
	c.t.Helper()
	r := c.reply()
	last := r
	if i := strings.LastIndex(strings.TrimRight(r, "\r\n"), "\n"); i >= 0 {
		last = r[i+1:]
	}
	if !strings.HasPrefix(last, prefix) {
		c.t.Fatalf("want reply %q, got %q", prefix, r)
	}
	return r
}

func (c *client) cmd(line, prefix string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.expect(prefix)
}

// expectClosed checks that the server closed the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	b, err := c.r.ReadString('\n')
	if err == nil || !(errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset")) {
		c.t.Fatalf("want connection closed, got %q, %v", b, err)
	}
}

// hello reads the banner and says EHLO.
func (c *client) hello() string {
	c.t.Helper()
	c.expect("220 ")
	return c.cmd("EHLO client.test", "250 ")
}

// startTLS upgrades the connection and says EHLO again.
func (c *client) startTLS(pool *x509.CertPool) string {
	c.t.Helper()
	c.cmd("STARTTLS", "220 ")
	c.upgrade(pool)
	return c.cmd("EHLO client.test", "250 ")
}

// upgrade runs the TLS handshake after a 220 to STARTTLS.
func (c *client) upgrade(pool *x509.CertPool) {
	c.t.Helper()
	tc := tls.Client(c.conn, &tls.Config{RootCAs: pool, ServerName: testHost})
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

// testTLS returns a server config with a self-signed certificate made at
// run time, and a pool that trusts it.
func testTLS(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	c, err := selfsigned.New(time.Now(), testHost)
	if err != nil {
		t.Fatal(err)
	}
	return c.Config, c.Pool
}

func testUser(t *testing.T, name, password string, allowed ...string) User {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return User{Name: name, PasswordHash: string(h), AllowedFrom: allowed}
}

const simpleMsg = "From: a@example.test\r\nSubject: hi\r\n\r\nhello\r\n"

// sendMessage runs one transaction with DATA and returns the final reply.
func (c *client) sendMessage(from, to, body string) string {
	c.t.Helper()
	c.cmd("MAIL FROM:<"+from+">", "250")
	c.cmd("RCPT TO:<"+to+">", "250")
	c.cmd("DATA", "354")
	c.send(body + ".\r\n")
	return c.reply()
}

// shutdown drains s with a generous bound.
func shutdown(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
