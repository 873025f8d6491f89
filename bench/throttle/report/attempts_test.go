package main

import (
	"strings"
	"testing"
	"time"
)

// TestMaxUntried reads both relays' logs as they print them and finds the
// longest wait from a deferral to the recipient's next attempt.
func TestMaxUntried(t *testing.T) {
	sluice := `time=2026-11-30T02:18:43.410Z level=INFO msg=delivery log=mail id=1K8L3UL9N78T1BE2 from=bench@sender.test to=user9@dest.test relay=127.0.0.1[127.0.0.1]:37105 delay=27ms attempt=1 status=sent dsn=2.0.0 class=success reply="250 2.0.0 Ok: queued as 1"
time=2026-11-30T02:18:43.491Z level=INFO msg=delivery log=mail id=1K8L3ULA478T1BEA from=bench@sender.test to=user14@dest.test relay=none delay=92ms attempt=1 status=deferred dsn=4.7.0 class=throttle reply="421 4.7.0 Too many concurrent connections from your IP"
time=2026-11-30T02:18:44.613Z level=INFO msg=delivery log=mail id=1K8L3ULDO78T1BJA from=bench@sender.test to=user157@dest.test relay=127.0.0.1[127.0.0.1]:37105 delay=1.101s attempt=1 status=deferred dsn=4.7.0 class=throttle reply="421 4.7.0 Rate limit exceeded, try again later"
time=2026-11-30T02:18:45.000Z level=INFO msg=queue log=mail note="to=user14@dest.test status=deferred"
time=2026-11-30T02:18:46.991Z level=INFO msg=delivery log=mail id=1K8L3ULA478T1BEA from=bench@sender.test to=user14@dest.test relay=127.0.0.1[127.0.0.1]:37105 delay=3.592s attempt=2 status=sent dsn=2.0.0 class=success reply="250 2.0.0 Ok: queued as 9"
time=2026-11-30T02:18:50.113Z level=INFO msg=delivery log=mail id=1K8L3ULDO78T1BJA from=bench@sender.test to=user157@dest.test relay=127.0.0.1[127.0.0.1]:37105 delay=6.6s attempt=2 status=sent dsn=2.0.0 class=success reply="250 2.0.0 Ok: queued as 10"
`
	atts, err := parseSluiceLog(strings.NewReader(sluice))
	if err != nil {
		t.Fatal(err)
	}
	end := time.Date(2026, 11, 30, 2, 19, 0, 0, time.UTC)
	if d, n := maxUntried(atts, end); n != 2 || d != 5500*time.Millisecond {
		t.Errorf("sluice: max untried %v over %d deferrals, want 5.5s over 2", d, n)
	}

	postfix := `Nov 30 02:18:46 postfix-bench postfix-bench/smtp[31661]: 9119B9C4BD0: to=<user30@dest.test>, relay=127.0.0.1[127.0.0.1]:42399, delay=0.12, delays=0.04/0.06/0.02/0, dsn=4.7.0, status=deferred (host 127.0.0.1[127.0.0.1] refused to talk to me: 421 4.7.0 Too many concurrent connections from your IP)
Nov 30 02:18:46 postfix-bench postfix-bench/smtp[31654]: 80E919C4BC1: to=<user2@dest.test>, relay=127.0.0.1[127.0.0.1]:42399, delay=0.09, delays=0.02/0.04/0.02/0.01, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 1)
Nov 30 02:18:46 postfix-bench postfix-bench/qmgr[31650]: 9119B9C4BD0: from=<bench@sender.test>, size=2310, nrcpt=1 (queue active)
Nov 30 02:18:58 postfix-bench postfix-bench/smtp[31661]: 9119B9C4BD0: to=<user30@dest.test>, relay=127.0.0.1[127.0.0.1]:42399, delay=12, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 7)
`
	atts, err = parsePostfixLog(strings.NewReader(postfix), 2026)
	if err != nil {
		t.Fatal(err)
	}
	if d, n := maxUntried(atts, end); n != 1 || d != 12*time.Second {
		t.Errorf("postfix: max untried %v over %d deferrals, want 12s over 1", d, n)
	}
	// A recipient never tried again counts until the end of the run.
	atts["user99@dest.test"] = []attempt{{at: end.Add(-20 * time.Second), deferred: true}}
	if d, _ := maxUntried(atts, end); d != 20*time.Second {
		t.Errorf("never retried: max untried %v, want 20s", d)
	}
}
