package lintcheck

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"sluice/config"
	"sluice/internal/fakeclock"
	"sluice/internal/syncbuf"
)

// shortMsg carries a bit.ly link (block), and is otherwise clean.
func shortMsg(from string) []byte {
	return []byte("From: Shop <news@" + from + ">\r\nTo: jane@example.org\r\nSubject: Spring tickets\r\n" +
		"Date: Mon, 30 Nov 2026 02:00:00 +0000\r\nMessage-ID: <a1@" + from + ">\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=us-ascii\r\n\r\nTickets are on sale now.\r\nBook here: https://bit.ly/3xYz\r\n")
}

// capsMsg has an all-caps Subject (info) and nothing else.
func capsMsg(from string) []byte {
	return bytes.Replace(shortMsg(from), []byte("Book here: https://bit.ly/3xYz\r\n"), []byte("See you there.\r\n"), 1)
}

func input(msg []byte, opens *int) Input {
	hdr := msg[:bytes.Index(msg, []byte("\r\n\r\n"))+4]
	return Input{MailFrom: "bounce@env.test", Header: hdr, Open: func() (io.ReadCloser, error) {
		*opens++
		return io.NopCloser(bytes.NewReader(msg)), nil
	}}
}

type fixture struct {
	c    *Checker
	clk  *fakeclock.Clock
	logs *syncbuf.Buffer
	cnt  *Counters
	ta   *Tally
}

func newFixture(t *testing.T, mode string, edit func(*config.Config)) *fixture {
	t.Helper()
	cfg := config.Default()
	cfg.Lint.Mode = mode
	if edit != nil {
		edit(cfg)
	}
	f := &fixture{clk: fakeclock.New(), logs: &syncbuf.Buffer{}, cnt: NewCounters(), ta: NewTally(10)}
	o := OptionsFrom(cfg)
	o.Counters, o.Tally, o.Now = f.cnt, f.ta, f.clk.Now
	o.Logger = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	return f
}

func TestEnforceRefusesBlockFinding(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ModeEnforce, nil)
	opens := 0
	err := f.c.Check(context.Background(), input(shortMsg("shop.test"), &opens))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
		t.Fatalf("err %v, want 550 5.7.1", err)
	}
	if !strings.HasPrefix(se.Message, "Link directly to a domain you own") || !strings.HasSuffix(se.Message, "[lint link-shortener]") || strings.Contains(se.Message, "bit.ly") {
		t.Errorf("reply text %q: want the fix and the ID, never the evidence", se.Message)
	}
	if opens != 1 {
		t.Errorf("message opened %d times, want once", opens)
	}
	if got := f.cnt.Snapshot()[[2]string{"link-shortener", "block"}]; got != 1 {
		t.Errorf("counter %d, want 1", got)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `msg="lint: rejected" sender_domain=shop.test id=link-shortener evidence=https://bit.ly/3xYz`) {
		t.Errorf("no rejection line:\n%s", logs)
	}

	// A warn or info finding alone is accepted in enforce mode.
	if err := f.c.Check(context.Background(), input(capsMsg("shop.test"), &opens)); err != nil {
		t.Errorf("info finding refused: %v", err)
	}
}

func TestWarnLogsOncePerIntervalCountsEveryMessage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ModeWarn, func(c *config.Config) { c.Lint.WarnInterval = config.Duration(10 * time.Minute) })
	opens := 0
	check := func() {
		t.Helper()
		if err := f.c.Check(context.Background(), input(shortMsg("shop.test"), &opens)); err != nil {
			t.Fatalf("warn mode refused: %v", err)
		}
	}
	lines := func() int { return strings.Count(f.logs.String(), `msg="lint: finding"`) }
	check()
	check()
	f.clk.Advance(9 * time.Minute)
	check()
	if n := lines(); n != 1 {
		t.Fatalf("%d log lines within the interval, want 1:\n%s", n, f.logs.String())
	}
	// Another sender domain has its own line.
	if err := f.c.Check(context.Background(), input(shortMsg("other.test"), &opens)); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Minute)
	check()
	if n := lines(); n != 3 {
		t.Fatalf("%d log lines, want 3 (shop.test twice, other.test once):\n%s", n, f.logs.String())
	}
	if !strings.Contains(f.logs.String(), "level=WARN msg=\"lint: finding\" mode=warn sender_domain=shop.test id=link-shortener severity=block evidence=https://bit.ly/3xYz fix=") ||
		!strings.Contains(f.logs.String(), "same_not_logged=2") {
		t.Errorf("log line lacks its fields or the skipped count:\n%s", f.logs.String())
	}
	if got := f.cnt.Snapshot()[[2]string{"link-shortener", "block"}]; got != 5 {
		t.Errorf("counter %d, want 5 (every message)", got)
	}
	r := f.ta.Report(f.clk.Now(), nil, 0)
	if len(r.Senders) != 2 || r.Senders[0].Domain != "shop.test" || r.Senders[0].Total != 4 {
		t.Errorf("tally %+v", r.Senders)
	}
}

func TestOffNeverReads(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ModeOff, nil)
	opens := 0
	if err := f.c.Check(context.Background(), input(shortMsg("shop.test"), &opens)); err != nil || opens != 0 {
		t.Fatalf("off: err %v, opened %d times; want nil, never", err, opens)
	}
	if len(f.cnt.Snapshot()) != 0 || f.logs.String() != "" {
		t.Errorf("off counted or logged: %v %q", f.cnt.Snapshot(), f.logs.String())
	}
}

func TestDisabledAndShorteners(t *testing.T) {
	t.Parallel()
	opens := 0
	f := newFixture(t, ModeEnforce, func(c *config.Config) { c.Lint.Disabled = []string{"link-shortener"} })
	if err := f.c.Check(context.Background(), input(shortMsg("shop.test"), &opens)); err != nil {
		t.Errorf("a disabled finding refused: %v", err)
	}
	msg := bytes.Replace(shortMsg("shop.test"), []byte("https://bit.ly/3xYz"), []byte("https://go.corp.example/x"), 1)
	f = newFixture(t, ModeEnforce, nil)
	if err := f.c.Check(context.Background(), input(msg, &opens)); err != nil {
		t.Fatalf("a link to a domain not on the list refused: %v", err)
	}
	f = newFixture(t, ModeEnforce, func(c *config.Config) { c.Lint.Shorteners = []string{"go.corp.example"} })
	if err := f.c.Check(context.Background(), input(msg, &opens)); err == nil {
		t.Error("a link to a configured shortener was not refused")
	}
}

func TestBulkThreshold(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ModeEnforce, func(c *config.Config) { c.Lint.BulkPerDay = 3 })
	opens := 0
	for i := range 5 {
		err := f.c.Check(context.Background(), input(capsMsg("news.test"), &opens))
		if (err != nil) != (i >= 3) {
			t.Errorf("message %d: err %v; want a refusal from the 4th on (bulk without one-click unsubscribe)", i+1, err)
		}
		if err != nil && !strings.Contains(err.Error(), "bulk-no-unsubscribe") {
			t.Errorf("message %d: %v", i+1, err)
		}
	}
}

func TestSenderDomain(t *testing.T) {
	t.Parallel()
	tests := []struct{ header, mailFrom, want string }{
		{"From: A <a@Shop.Example>\r\n\r\n", "b@env.test", "shop.example"},
		{"from:  a@x.test\r\n (comment)\r\n\r\n", "", "x.test"},
		{"Subject: x\r\n\r\n", "b@Env.Test", "env.test"},
		{"From: not an address\r\n\r\n", "b@env.test", "env.test"},
		{"From: a@x.test, b@y.test\r\n\r\n", "", "x.test"},
		{"From: a@x.test", "", "x.test"}, // headers-only message without the empty line
		{"", "", "-"},
	}
	for _, tc := range tests {
		if got := senderDomain([]byte(tc.header), tc.mailFrom); got != tc.want {
			t.Errorf("senderDomain(%q, %q) = %q, want %q", tc.header, tc.mailFrom, got, tc.want)
		}
	}
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{
		{Mode: "loud", BulkPerDay: 1, WarnInterval: time.Minute},
		{Mode: ModeWarn, WarnInterval: time.Minute},
		{Mode: ModeWarn, BulkPerDay: 1},
	} {
		o.Lint.MaxBytes = 1 << 20
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

// countingReader counts what lint reads of a message.
type countingReader struct {
	r io.Reader
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

func (c countingReader) Close() error { return nil }

// TestReadsAtMostMaxBytes: lint reads a large message through the
// spool's reader and stops at lint.max_bytes, so a 25 MB message costs no
// more than the cap, whatever the number of sessions at once.
func TestReadsAtMostMaxBytes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ModeWarn, func(c *config.Config) { c.Lint.MaxBytes = 64 << 10 })
	msg := append(shortMsg("shop.test"), bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstu\r\n"), (25<<20)/70)...)
	var read int64
	in := input(msg, new(int))
	in.Open = func() (io.ReadCloser, error) { return countingReader{bytes.NewReader(msg), &read}, nil }
	if err := f.c.Check(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if read > 64<<10+4096 {
		t.Errorf("lint read %d bytes of a %d-byte message, want at most lint.max_bytes (64 KB)", read, len(msg))
	}
	if got := f.cnt.Snapshot()[[2]string{"link-shortener", "block"}]; got != 1 {
		t.Errorf("the link in the first bytes was not found: %v", f.cnt.Snapshot())
	}
}
