package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"sluice/internal/fakemx"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		ok   bool
		chk  func(config) bool
	}{
		{[]string{"-sessions", "3", "-rate", "50", "-window", "2s"}, true, func(c config) bool {
			return c.mx.MaxSessions == 3 && c.mx.RatePerWindow == 50 && c.mx.Window == 2*time.Second
		}},
		{[]string{"-outage", "10s-25s", "-outage", "1m-2m", "-schedule", "20s:3:50"}, true, func(c config) bool {
			return len(c.mx.Outages) == 2 && c.mx.Outages[1] == fakemx.Window{Start: time.Minute, End: 2 * time.Minute} &&
				c.mx.Schedule[0] == fakemx.Limits{At: 20 * time.Second, MaxSessions: 3, RatePerWindow: 50}
		}},
		{[]string{"-script", "rcpt:foo:550 5.1.1 no such user", "-script", "data-end*1::451 4.3.0 x"}, true, func(c config) bool {
			return len(c.mx.Script) == 2 && c.mx.Script[1].Times == 1 && c.mx.Script[0].Match == "foo"
		}},
		{[]string{"-greylist", "5m", "-greylist-text", "451 4.7.1 Greylisted, try again in %d seconds", "-starttls", "-duration", "1m"}, true, func(c config) bool {
			return c.mx.Greylist == 5*time.Minute && c.mx.STARTTLS && c.duration == time.Minute
		}},
		{[]string{"-penalty", "5:10s:1m:30s", "-mailbox-rate", "2", "-mailbox-window", "1m"}, true, func(c config) bool {
			return c.mx.Penalty == fakemx.PenaltyBox{Refusals: 5, Within: 10 * time.Second, Block: time.Minute, Extend: 30 * time.Second} &&
				c.mx.MailboxRate == 2 && c.mx.MailboxWindow == time.Minute
		}},
		{[]string{"-penalty", "5:10s"}, false, nil},
		{[]string{"-outage", "25s-10s"}, false, nil},
		{[]string{"-schedule", "x"}, false, nil},
		{[]string{"-script", "bogus::250 ok"}, false, nil},
	}
	for _, tc := range tests {
		cfg, err := parseFlags(tc.args, io.Discard)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v", tc.args, err)
			continue
		}
		if err == nil && !tc.chk(cfg) {
			t.Errorf("%q: config %+v", tc.args, cfg)
		}
	}
}

func TestServe(t *testing.T) {
	t.Parallel()
	statsFile := filepath.Join(t.TempDir(), "stats.json")
	cfg, err := parseFlags([]string{"-http", "127.0.0.1:0", "-stats", statsFile, "-greylist", "1ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, pw); _ = pw.Close() }()
	out := bufio.NewReader(pr)
	addr, _ := out.ReadString('\n')
	httpLine, _ := out.ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	addr = strings.TrimSpace(addr)
	httpAddr := strings.TrimPrefix(strings.TrimSpace(httpLine), "http ")

	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatalf("dial %q: %v", addr, err)
	}
	if err := c.Hello("relay.test"); err != nil {
		t.Fatal(err)
	}
	// Greylisted once (first attempt), then let through once 1ms passed
	// on the wall clock: the binary runs on real time.
	err = c.SendMail("a@src.test", []string{"u@dest.test"}, strings.NewReader("Message-ID: <m@x>\r\n\r\nhi\r\n"))
	if err == nil {
		t.Fatal("first attempt was not greylisted")
	}
	_ = c.Reset()
	for c.SendMail("a@src.test", []string{"u@dest.test"}, strings.NewReader("Message-ID: <m@x>\r\n\r\nhi\r\n")) != nil {
		_ = c.Reset()
	}
	_ = c.Quit()

	resp, err := http.Get("http://" + httpAddr + "/stats")
	if err != nil {
		t.Fatalf("GET /stats: %v", err)
	}
	var live report
	err = json.NewDecoder(resp.Body).Decode(&live)
	_ = resp.Body.Close()
	if err != nil || live.Stats.Delivered != 1 {
		t.Errorf("live stats %+v, err %v", live.Stats, err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	b, err := os.ReadFile(statsFile)
	if err != nil {
		t.Fatal(err)
	}
	var final report
	if err := json.Unmarshal(b, &final); err != nil {
		t.Fatal(err)
	}
	if final.Stats.Delivered != 1 || final.Stats.GreylistReplies < 1 || final.Greylist.Recipients != 1 ||
		final.Stats.Recipients["u@dest.test"].Deliveries != 1 || final.Stats.EHLONames["relay.test"] == 0 {
		t.Errorf("final report %s", b)
	}
}
