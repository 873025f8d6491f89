package inbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"sluice/config"
	"sluice/internal/fakeclock"
	"sluice/internal/syncbuf"
	"sluice/relay/lintcheck"
)

// lintMsg carries a bit.ly link: a block-level finding of the content lint
// (issue 16), and nothing else.
const lintMsg = "From: Shop <news@shop.example>\r\nTo: jane@example.org\r\nSubject: Spring tickets\r\n" +
	"Date: Mon, 30 Nov 2026 02:00:00 +0000\r\nMessage-ID: <a1@shop.example>\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=us-ascii\r\n\r\nTickets are on sale now.\r\nBook here: https://bit.ly/3xYz\r\n"

// lintChecks is the daemon's lint check in mode, as the inbound Checker,
// with its counters, its log and its clock.
func lintChecks(t *testing.T, mode string) (Checker, *lintcheck.Counters, *syncbuf.Buffer, *fakeclock.Clock) {
	t.Helper()
	cfg := config.Default()
	cfg.Lint.Mode = mode
	o := lintcheck.OptionsFrom(cfg)
	logs, clk := &syncbuf.Buffer{}, fakeclock.New()
	o.Counters, o.Now, o.Logger = lintcheck.NewCounters(), clk.Now, slog.New(slog.NewTextHandler(logs, nil))
	c, err := lintcheck.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return checkFunc(func(ctx context.Context, m *Message) error {
		return c.Check(ctx, lintcheck.Input{MailFrom: m.From, Header: m.Header, Open: m.Content.Open})
	}), o.Counters, logs, clk
}

// TestLintAtAcceptance: over SMTP's DATA and the HTTP API's Submit alike,
// enforce mode answers 550 5.7.1 with the finding's fix to a message with
// a block-level finding and queues nothing; warn mode queues it, logs the
// finding once per sender domain per interval and counts every message.
func TestLintAtAcceptance(t *testing.T) {
	t.Parallel()
	for _, via := range []string{"smtp", "api"} {
		for _, mode := range []string{lintcheck.ModeEnforce, lintcheck.ModeWarn} {
			t.Run(via+"/"+mode, func(t *testing.T) {
				t.Parallel()
				check, counters, logs, clk := lintChecks(t, mode)
				st := &fakeStore{}
				var results []string
				o := Options{Store: st, Check: check, Users: []User{apiUser("app", "tok")},
					OnResult: func(ok bool, reason string, _ time.Duration) { results = append(results, reason) }}
				send := func() string {
					t.Helper()
					if via == "smtp" {
						addr, _, _ := startServer(t, o)
						c := dial(t, addr)
						c.hello()
						return c.sendMessage("bounce@shop.example", "jane@example.org", lintMsg)
					}
					s, err := New(testOptions(o))
					if err != nil {
						t.Fatal(err)
					}
					_, err = s.Submit(context.Background(), &Submission{From: "bounce@shop.example", Rcpts: []string{"jane@example.org"},
						User: "app", Client: netip.MustParseAddr("192.0.2.7"), Protocol: "HTTPS", Message: []byte(lintMsg)})
					var se *smtp.SMTPError
					switch {
					case err == nil:
						return "250"
					case errors.As(err, &se):
						return fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
					}
					return err.Error()
				}
				for range 3 {
					got := send()
					switch mode {
					case lintcheck.ModeEnforce:
						if !strings.HasPrefix(got, "550 5.7.1 Link directly to a domain you own") || !strings.Contains(got, "[lint link-shortener]") {
							t.Fatalf("reply %q, want 550 5.7.1 and the fix", got)
						}
					default:
						if !strings.HasPrefix(got, "250") {
							t.Fatalf("reply %q, want 250", got)
						}
					}
				}
				clk.Advance(time.Minute) // lint.warn_interval's default
				send()
				queued := len(st.all())
				if mode == lintcheck.ModeEnforce && (queued != 0 || !st.allDiscarded()) {
					t.Errorf("enforce queued %d messages (spools discarded: %v), want none", queued, st.allDiscarded())
				}
				if mode == lintcheck.ModeWarn && queued != 4 {
					t.Errorf("warn queued %d messages, want 4", queued)
				}
				if got := counters.Snapshot()[[2]string{"link-shortener", "block"}]; got != 4 {
					t.Errorf("sluice_lint_findings_total{link-shortener,block} = %d, want 4 (every message)", got)
				}
				if n := strings.Count(logs.String(), `msg="lint: finding"`); n != 2 {
					t.Errorf("%d finding lines, want 2 (one per interval):\n%s", n, logs.String())
				}
				if mode == lintcheck.ModeEnforce && strings.Count(logs.String(), `msg="lint: rejected"`) != 4 {
					t.Errorf("want one rejection line per refused message:\n%s", logs.String())
				}
			})
		}
	}
}
