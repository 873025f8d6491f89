package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"sluice/admin"
	"sluice/config"
	"sluice/relay/lintcheck"
)

var update = flag.Bool("update", false, "rewrite the golden files of the CLI tests")

var gNow = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

func tp(t time.Time) *time.Time { return &t }

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var (
	gMsgs = []admin.Message{
		{ID: "1K7ABCDEF0000001", From: "app@shop.example", Received: gNow.Add(-42 * time.Minute), Size: 2300, Recipients: []admin.Recipient{
			{Addr: "ann@gmail.com", Domain: "gmail.com", State: "queued", NextAttempt: tp(gNow.Add(3 * time.Minute)), Attempts: 2, LastReply: "421 4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address.", LastClass: "throttle"},
			{Addr: "bob@example.org", Domain: "example.org", State: "sent", Attempts: 1, LastReply: "250 2.0.0 OK", LastClass: "success"},
		}},
		{ID: "1K7ABCDEF0000002", From: "", Received: gNow.Add(-3 * 24 * time.Hour), Size: 1 << 20, Recipients: []admin.Recipient{
			{Addr: "app@shop.example", Domain: "shop.example", State: "held"},
		}},
	}
	gShow = admin.Message{ID: "1K7ABCDEF0000001", From: "app@shop.example", Received: gNow.Add(-42 * time.Minute), Size: 2300, Client: "127.0.0.1", Helo: "app1", Recipients: []admin.Recipient{
		{Addr: "ann@gmail.com", Domain: "gmail.com", State: "queued", NextAttempt: tp(gNow.Add(3 * time.Minute)), Attempts: 2, History: []admin.Attempt{
			{At: gNow.Add(-40 * time.Minute), Relay: "gmail-smtp-in.l.google.com[142.250.1.27]:25", Reply: "421 4.7.0 Try again later, closing connection.", Class: "throttle", Status: "deferred"},
			{At: gNow.Add(-20 * time.Minute), Relay: "gmail-smtp-in.l.google.com[142.250.1.27]:25", Reply: "421 4.7.28 unusual rate", Class: "throttle", Status: "deferred"},
		}},
		{Addr: "new@example.net", Domain: "example.net", State: "queued", NextAttempt: tp(gNow)},
	}}
	gSummary = admin.Summary{Buckets: admin.SummaryBuckets,
		Rows: []admin.SummaryRow{
			{Domain: "gmail.com", Total: 1204, Counts: []int{800, 300, 100, 4, 0, 0, 0}},
			{Domain: "yahoo.com", Total: 31, Counts: []int{0, 0, 0, 0, 0, 11, 20}},
		},
		Total: admin.SummaryRow{Domain: "TOTAL", Total: 1235, Counts: []int{800, 300, 100, 4, 0, 11, 20}}}
	gDomains = admin.Domains{
		Alarm: admin.Alarm{Active: true, Reason: "3 of 4 destinations attempted in the last 10m0s are throttling: check the sender's IP reputation, authentication and content", Since: tp(gNow.Add(-5 * time.Minute))},
		Destinations: []admin.Destination{
			{Name: "gmail", State: "paused", PausedUntil: tp(gNow.Add(90 * time.Second)), Concurrency: 2, MaxConcurrency: 20, Rate: 2.5, MaxRate: 0, GreylistWindow: "0s",
				LastHour: map[string]int{"throttle": 17, "success": 120}, Replies421: 17, LastReply: "421 4.7.28 unusual rate", Open: 1204, Held: 4},
			{Name: "yahoo", State: "probing", Concurrency: 1, MaxConcurrency: 5, Rate: 0, MaxRate: 10, GreylistWindow: "0s", LastHour: map[string]int{}, LastReply: "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred"},
			{Name: "example.org", State: "open", Concurrency: 20, MaxConcurrency: 20, GreylistWindow: "5m1s", LastHour: map[string]int{"greylist": 3, "success": 9}, LastReply: "250 2.0.0 OK"},
			{Name: "slow.example", State: "idle", LastHour: map[string]int{}, Open: 31},
		},
		// The sender side (issue 16): a campaign's shortened links peaked
		// in the hour gmail started to throttle.
		Lint: &lintcheck.Report{Mode: "warn", Start: gNow.Truncate(time.Hour).Add(-23 * time.Hour), Senders: []lintcheck.Sender{
			{Domain: "shop.example", Messages: 5230, Linted: 1870, Total: 460, Findings: []lintcheck.SenderFinding{
				{ID: "link-shortener", Severity: "block", Count: 410, Hourly: gHourly(22, 380, 30), Last: gNow.Add(-time.Minute),
					Evidence: "https://bit.ly/3xYz", Fix: "Link to your own domain instead of a URL shortener."},
				{ID: "bulk-unsubscribe", Severity: "warn", Count: 50, Hourly: gHourly(23, 50), Last: gNow.Add(-2 * time.Minute),
					Evidence: "5230 messages in 24 h without List-Unsubscribe-Post", Fix: "Add List-Unsubscribe and List-Unsubscribe-Post: List-Unsubscribe=One-Click."},
			}},
			{Domain: "news.example", Messages: 12, Linted: 12, Total: 1, Findings: []lintcheck.SenderFinding{
				{ID: "subject-caps", Severity: "info", Count: 1, Hourly: gHourly(3, 1), Last: gNow.Add(-20 * time.Hour), Evidence: "Subject: BIG SALE", Fix: "Write the Subject in sentence case."},
			}},
		}, More: 2},
	}
	gDetail = admin.DomainDetail{Destination: gDomains.Destinations[0], Domains: []string{"gmail.com", "googlemail.com"}, Recent: []admin.Event{
		{At: gNow.Add(-time.Minute), Domain: "gmail.com", Class: "throttle", Status: "deferred", Reply: "421 4.7.28 unusual rate"},
		{At: gNow.Add(-2 * time.Minute), Domain: "googlemail.com", Class: "success", Status: "sent", Reply: "250 2.0.0 OK"},
	}}
	gStatus = admin.Status{Up: true, Ready: true, Version: "v0.1.0", Started: gNow.Add(-26 * time.Hour), UptimeSeconds: 26 * 3600,
		Queue: map[string]int{"queued": 1235, "active": 20, "held": 1, "sent": 50000, "bounced": 12}, Oldest: tp(gNow.Add(-3 * 24 * time.Hour))}
	gSupp = []admin.Suppression{{Addr: "gone@example.org", Reason: "550 5.1.1 user unknown", At: gNow.Add(-time.Hour)}}
	// A status after a reload that changed a restart-only key, then a
	// refused one.
	gStatusConfig = func() admin.Status {
		s := gStatus
		s.Config = &admin.ConfigStatus{File: "/etc/sluice/sluice.toml", Hash: "5e3c0b1d2f4a69788e1f0c2d3b4a5968778695a4b3c2d1e0f9a8b7c6d5e4f3a2",
			Loaded: gNow.Add(-2 * time.Hour), NeedsRestart: []string{"listen.smtp", "policy.group_by"},
			LastReload: &admin.ReloadStatus{At: gNow.Add(-time.Hour), Error: "invalid configuration: /etc/sluice/sluice.toml:12: limits.max_recipients: must be at least 1, not 0"}}
		return s
	}()
	gReload = admin.ReloadResult{File: "/etc/sluice/sluice.toml", Hash: "5e3c0b1d2f4a69788e1f0c2d3b4a5968778695a4b3c2d1e0f9a8b7c6d5e4f3a2",
		Changed: []config.Change{
			{Key: "limits.max_recipients", Old: "1000", New: "500"},
			{Key: "delivery.route[1].host", Old: `"10.0.0.5:25"`, New: `"10.0.0.6:25"`},
			{Key: "access.user[1].password_hash", Old: "REDACTED", New: "REDACTED"},
			{Key: "auth.dkim[1].key_file", Old: "(same file)", New: "(contents changed: read again)"},
		},
		NeedsRestart: []string{"listen.smtp"}}

	// Hostile strings as a client or a remote server could plant them:
	// clear screen, set the title (OSC), an 8-bit CSI (U+009B), a
	// right-to-left override, DEL, a tab and CRLF, invalid UTF-8.
	hostile      = "\x1b[2J\x1b]0;pwned\x07\u009b31m\u202eevil\x7f\t\r\n\xff"
	gHostileShow = admin.Message{ID: "1K7ABCDEF0000003", From: `"x\x1b[0m"@src.example`, Received: gNow.Add(-time.Minute), Size: 10,
		Client: "127.0.0.1", Helo: "host" + hostile, User: "app" + hostile, Recipients: []admin.Recipient{
			{Addr: "\"\u202e\"@dest.example", Domain: "dest.example", State: "queued", NextAttempt: tp(gNow), Attempts: 1,
				LastReply: "550 5.1.1 " + hostile, LastClass: "reject", History: []admin.Attempt{
					{At: gNow.Add(-30 * time.Second), Relay: "mx" + hostile + "[192.0.2.9]:25", Reply: "451 4.3.0 " + hostile, Class: "temporary", Status: "deferred"},
				}},
		}}
	gHostileSupp    = []admin.Suppression{{Addr: "u" + hostile + "@x.example", Reason: "550 " + hostile, At: gNow.Add(-time.Hour)}}
	gHostileDomains = admin.Domains{Destinations: []admin.Destination{{Name: "x" + hostile, State: "open", GreylistWindow: "0s", LastHour: map[string]int{}, LastReply: "421 " + hostile}},
		Lint: &lintcheck.Report{Mode: "warn", Start: gNow.Truncate(time.Hour).Add(-23 * time.Hour), Senders: []lintcheck.Sender{
			{Domain: "s" + hostile, Messages: 1, Total: 1, Findings: []lintcheck.SenderFinding{
				{ID: "link-shortener", Severity: "warn", Count: 1, Hourly: gHourly(23, 1), Last: gNow, Evidence: "https://bit.ly/" + hostile, Fix: "Link to your own domain."},
			}},
		}}}
)

// gHourly is a day of hourly counts with counts from the hour at index
// from on.
func gHourly(from int, counts ...int) []int {
	out := make([]int, lintcheck.Hours)
	copy(out[from:], counts)
	return out
}

func TestGoldenRender(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		render func(*bytes.Buffer)
		data   any
	}{
		{"queue_list", func(b *bytes.Buffer) { renderList(b, gMsgs, gNow) }, gMsgs},
		{"queue_list_empty", func(b *bytes.Buffer) { renderList(b, nil, gNow) }, []admin.Message{}},
		{"queue_show", func(b *bytes.Buffer) { renderShow(b, gShow, gNow) }, gShow},
		{"queue_summary", func(b *bytes.Buffer) { renderSummary(b, gSummary) }, gSummary},
		{"domains", func(b *bytes.Buffer) { renderDomains(b, gDomains, gNow) }, gDomains},
		{"domains_show", func(b *bytes.Buffer) { renderDomainDetail(b, gDetail, gNow) }, gDetail},
		{"limits", func(b *bytes.Buffer) { renderLimits(b, gDomains.Destinations[1]) }, gDomains.Destinations[1]},
		{"status", func(b *bytes.Buffer) { renderStatus(b, gStatus) }, gStatus},
		{"status_config", func(b *bytes.Buffer) { renderStatus(b, gStatusConfig) }, gStatusConfig},
		{"reload", func(b *bytes.Buffer) { renderReload(b, gReload) }, gReload},
		{"reload_nothing", func(b *bytes.Buffer) { renderReload(b, admin.ReloadResult{Hash: "ab12"}) }, admin.ReloadResult{Hash: "ab12"}},
		{"suppress_list", func(b *bytes.Buffer) { renderSuppressions(b, gSupp) }, gSupp},
		{"hostile_queue_show", func(b *bytes.Buffer) { renderShow(b, gHostileShow, gNow) }, gHostileShow},
		{"hostile_queue_list", func(b *bytes.Buffer) { renderList(b, []admin.Message{gHostileShow}, gNow) }, []admin.Message{gHostileShow}},
		{"hostile_suppress_list", func(b *bytes.Buffer) { renderSuppressions(b, gHostileSupp) }, gHostileSupp},
		{"hostile_domains", func(b *bytes.Buffer) { renderDomains(b, gHostileDomains, gNow) }, gHostileDomains},
	}
	for _, tc := range tests {
		var b bytes.Buffer
		tc.render(&b)
		golden(t, tc.name+".txt", b.Bytes())
		var j bytes.Buffer
		if err := printJSON(&j, tc.data); err != nil {
			t.Fatal(err)
		}
		golden(t, tc.name+".json", j.Bytes())
		for _, out := range [][]byte{b.Bytes(), j.Bytes()} {
			if bad := terminalUnsafe(out); bad != "" {
				t.Errorf("%s: %s in the output:\n%s", tc.name, bad, out)
			}
		}
	}
}

// terminalUnsafe names the first thing in out that a terminal would act
// on: a control character other than the line feed, DEL, a C1 control, a
// bidi or other format character, or invalid UTF-8.
func terminalUnsafe(out []byte) string {
	if !utf8.Valid(out) {
		return "invalid UTF-8"
	}
	for _, r := range string(out) {
		if r < 0x20 && r != '\n' || r == 0x7f || r >= 0x80 && r < 0xa0 || r != '\n' && !unicode.IsPrint(r) && !unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) {
			return fmt.Sprintf("%U", r)
		}
	}
	return ""
}

// TestGoldenExplain runs the real command: explain needs no daemon.
func TestGoldenExplain(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, stage, line string }{
		{"explain_gmail", "rcpt", "421 4.7.28 Our system has detected an unusual rate of unsolicited mail"},
		{"explain_greylist", "rcpt", "450 4.7.1 Greylisted, please try again in 300 seconds"},
		{"explain_greeting", "greeting", "421 4.3.2 Service not available"},
		{"explain_http421", "rcpt", "HTTP/1.1 421 Misdirected Request"},
		{"explain_throttle_hint", "greeting", "421 4.7.0 Too many connections from your IP, try again in 60 seconds"},
	}
	for _, tc := range tests {
		for _, asJSON := range []bool{false, true} {
			args := []string{"explain", "--stage", tc.stage, tc.line}
			ext := ".txt"
			if asJSON {
				args = append(args, "--json")
				ext = ".json"
			}
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != 0 {
				t.Fatalf("%v: exit %d: %s", args, code, errb.String())
			}
			golden(t, tc.name+ext, out.Bytes())
		}
	}
}

func TestCLIExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := "unix:" + filepath.Join(dir, "admin.sock")
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"status", "--admin", sock}, 1, "no sluice daemon at " + filepath.Join(dir, "admin.sock") + " — is `sluice serve` running?"},
		{[]string{"queue", "list", "--admin", sock}, 1, "no sluice daemon"},
		{[]string{"domains", "--admin", sock, "--json"}, 1, "no sluice daemon"},
		{[]string{"queue"}, 2, "usage"},
		{[]string{"queue", "frobnicate"}, 2, "unknown queue command"},
		{[]string{"queue", "list", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"queue", "show"}, 2, "queue show ID"},
		{[]string{"queue", "hold", "--admin", sock}, 2, "no message IDs"},
		{[]string{"limits", "set", "x.test"}, 2, "--max-concurrency and/or --rate"},
		{[]string{"limits"}, 2, "usage"},
		{[]string{"suppress", "add"}, 2, "usage"},
		{[]string{"explain"}, 2, "reply line"},
		{[]string{"explain", "--stage", "nope", "421"}, 2, "unknown stage"},
		{[]string{"queue", "list", "-h"}, 0, "-older-than"},
		{[]string{"completion", "bash"}, 0, ""},
		{[]string{"completion"}, 2, "bash|zsh"},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.err) {
			t.Errorf("%v: exit %d, stderr %q; want %d containing %q", tc.args, code, errb.String(), tc.code, tc.err)
		}
	}
}

func TestSelection(t *testing.T) {
	t.Parallel()
	sel, err := selection(strings.NewReader("1K7A  42m  app@x\n\n1K7B\n"), []string{"-"}, "")
	if err != nil || strings.Join(sel.IDs, ",") != "1K7A,1K7B" {
		t.Fatalf("stdin IDs = %v, %v", sel.IDs, err)
	}
	if _, err := selection(strings.NewReader(""), []string{"a"}, "d.test"); err == nil {
		t.Fatal("IDs and --domain accepted together")
	}
	if sel, _ := selection(nil, nil, "d.test"); sel.Domain != "d.test" {
		t.Fatal("domain selection")
	}
}

func TestParseInterleaved(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	j := fs.Bool("json", false, "")
	d := fs.String("domain", "", "")
	pos, err := parseInterleaved(fs, []string{"show", "--json", "ID1", "--domain", "a.test", "--", "-x"})
	if err != nil || !*j || *d != "a.test" || strings.Join(pos, " ") != "show ID1 -x" {
		t.Fatalf("pos %v json %v domain %q err %v", pos, *j, *d, err)
	}
}

// TestListStreamsAsWhole: a listing printed as it streams in is what the
// renderers print for the whole list: the same JSON document, and the
// same table with a pointer to the next page when a limit cut it.
func TestListStreamsAsWhole(t *testing.T) {
	t.Parallel()
	for _, msgs := range [][]admin.Message{gMsgs, {}, {gHostileShow}} {
		var whole, streamed bytes.Buffer
		if err := printJSON(&whole, msgs); err != nil {
			t.Fatal(err)
		}
		j := &jsonArray{w: &streamed}
		for _, m := range msgs {
			if err := j.add(m); err != nil {
				t.Fatal(err)
			}
		}
		if err := j.end(admin.ListEnd{Messages: len(msgs)}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(whole.Bytes(), streamed.Bytes()) {
			t.Errorf("streamed JSON differs:\n%s\nwant\n%s", streamed.Bytes(), whole.Bytes())
		}
	}
	var b bytes.Buffer
	p := newListPrinter(&b, gNow)
	for _, m := range gMsgs {
		_ = p.add(m)
	}
	_ = p.end(admin.ListEnd{Messages: 2, More: true, Next: gMsgs[1].ID})
	golden(t, "queue_list_more.txt", b.Bytes())
}
