package main

import (
	"context"
	"fmt"
	"net/smtp"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"sluice/admin"
	"sluice/internal/testpeer"
)

// TestProofLint (issue 16 items 2, 3, 5) drives the built binary with
// swaks: a message with a bit.ly link is refused in lint enforce mode
// with 550 5.7.1 and the finding's fix, and nothing is queued; after a
// reload to warn mode the same message is queued (250), the log has the
// finding with its sender domain, /metrics counts both messages, and
// `sluice domains` shows the sender domain with the finding.
func TestProofLint(t *testing.T) {
	testpeer.Need(t, "swaks")
	testpeer.Need(t, "curl")
	dir := t.TempDir()
	smtpAddr, httpAddr := freeAddr(t), freeAddr(t)
	base := readFile(t, writeAdminConfig(t, dir, smtpAddr, httpAddr, routeTo("dest.test", freeAddr(t)))) // the next hop is down: mail stays queued
	cfg := filepath.Join(dir, "sluice.toml")
	withMode := func(mode string) string { return base + fmt.Sprintf("\n[lint]\nmode = %q\n", mode) }
	writeConfigRaw(t, cfg, withMode("enforce"))
	relay := startRelay(t, cfg, smtpAddr)

	send := func() (string, error) {
		return swaks(t, "--server", smtpAddr, "--from", "bounce@shop.test", "--to", "jane@dest.test", "--helo", "app.test",
			"--header", "From: Shop <news@shop.test>", "--header", "Subject: Spring tickets",
			"--body", "Tickets are on sale now.\nBook here: https://bit.ly/3xYz\n")
	}
	out, err := send()
	if err == nil || !strings.Contains(out, "<** 550 5.7.1 Link directly to a domain you own") || !strings.Contains(out, "[lint link-shortener]") {
		t.Fatalf("enforce: swaks %v, want 550 5.7.1 with the fix:\n%s", err, out)
	}
	var msgs []admin.Message
	cliJSON(t, &msgs, "queue", "list", "--config", cfg)
	if len(msgs) != 0 {
		t.Fatalf("enforce queued %+v, want nothing", msgs)
	}

	writeConfigRaw(t, cfg, withMode("warn"))
	if err := relay.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the reload", func() bool { return strings.Contains(relayLog(cfg), `msg="config changed" key=lint.mode`) })
	out, err = send()
	if err != nil || !strings.Contains(out, "queued as") {
		t.Fatalf("warn: swaks %v, want 250:\n%s", err, out)
	}
	cliJSON(t, &msgs, "queue", "list", "--config", cfg)
	if len(msgs) != 1 {
		t.Fatalf("warn queued %d messages, want 1", len(msgs))
	}
	logs := relayLog(cfg)
	for _, want := range []string{
		`msg="lint: rejected" sender_domain=shop.test id=link-shortener evidence=https://bit.ly/3xYz`,
		`msg="lint: finding" mode=warn sender_domain=shop.test id=link-shortener severity=block evidence=https://bit.ly/3xYz fix="Link directly`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
	code, metrics := curlCode(t, "http://"+httpAddr+"/metrics")
	if code != "200" || !strings.Contains(metrics, `sluice_lint_findings_total{id="link-shortener",severity="block"} 2`+"\n") {
		t.Errorf("/metrics (HTTP %s) lacks the findings of both messages:\n%s", code, grepLines(metrics, "sluice_lint"))
	}
	text, rc := cli(t, "domains", "--config", cfg)
	if rc != 0 || !strings.Contains(text, "content lint, last 24 h, by sender domain (lint.mode warn):") ||
		!strings.Contains(text, "shop.test") || !strings.Contains(text, "link-shortener") || !strings.Contains(text, "https://bit.ly/3xYz") {
		t.Errorf("sluice domains (exit %d) does not show the finding:\n%s", rc, text)
	}
	var d admin.Domains
	cliJSON(t, &d, "domains", "--config", cfg)
	if d.Lint == nil || len(d.Lint.Senders) != 1 || d.Lint.Senders[0].Domain != "shop.test" || d.Lint.Senders[0].Messages != 2 ||
		d.Lint.Senders[0].Findings[0].Count != 2 {
		t.Errorf("domains --json: %+v", d.Lint)
	}
}

// grepLines keeps the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestBrowserDashboardLint (issue 16 item 3) loads the dashboard of a
// running daemon in headless Chromium after a message with a bit.ly link
// went through lint in warn mode: the "Content lint by sender domain"
// table shows the sender domain and the finding, as text, and the public
// dashboard carries no evidence (the link with its token).
func TestBrowserDashboardLint(t *testing.T) {
	browser := chromium(t)
	dir := t.TempDir()
	smtpAddr, httpAddr := freeAddr(t), freeAddr(t)
	cfg := writeAdminConfig(t, dir, smtpAddr, httpAddr, routeTo("dest.test", freeAddr(t)))
	startRelay(t, cfg, smtpAddr)
	msg := "From: Shop <news@shop.test>\r\nTo: jane@dest.test\r\nSubject: Spring tickets\r\n\r\nBook here: https://bit.ly/secret-token\r\n"
	if err := smtp.SendMail(smtpAddr, nil, "bounce@shop.test", []string{"jane@dest.test"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(browserContext(t, browser), 60*time.Second)
	defer cancel()
	var row, note, page string
	var hidden bool
	err := chromedp.Run(ctx,
		chromedp.Navigate("http://"+httpAddr+"/"),
		chromedp.WaitVisible(`body[data-loaded="1"]`, chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("lint-section").hidden`, &hidden),
		chromedp.Text(`#lint tbody tr`, &row, chromedp.ByQuery),
		chromedp.Text(`#lint-note`, &note, chromedp.ByQuery),
		chromedp.Evaluate(`document.body.innerText`, &page),
	)
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if hidden || !strings.Contains(row, "shop.test") || !strings.Contains(row, "link-shortener") || !strings.Contains(row, "block") {
		t.Errorf("lint table (hidden %v) row %q: want shop.test, link-shortener, block", hidden, row)
	}
	if !strings.Contains(note, "mode warn") {
		t.Errorf("lint note %q", note)
	}
	if strings.Contains(page, "secret-token") {
		t.Error("the public dashboard shows the evidence")
	}
}
