package main

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The relays' own logs say when each recipient was tried and whether it
// was deferred: the fake MX cannot, since a 421 at greeting or at MAIL
// names no recipient. From them the report finds the longest time a
// refused recipient waited for its next attempt (issue 11's drop target:
// no recipient left untried for longer than retry_max).

// attempt is one try of one recipient: when it ended and whether it was
// deferred.
type attempt struct {
	at       time.Time
	deferred bool
}

// sluiceDelivery matches the daemon's "delivery" log line (slog text):
// its time, recipient and status.
var sluiceDelivery = regexp.MustCompile(`^time=(\S+) .*\bmsg=delivery .*?\bid=\S+ from=\S* to=(\S+) .*? status=(\w+)`)

// postfixDelivery matches a Postfix smtp delivery line of maillog_file:
// "Nov 30 02:14:25 host postfix-bench/smtp[1]: 3F2A1B: to=<u@d>, ..., status=deferred (...)".
var postfixDelivery = regexp.MustCompile(`^(\w{3} +\d+ \d\d:\d\d:\d\d) \S+ \S+/smtp\[\d+\]: \w+: to=<([^>]+)>, .*? status=(\w+)`)

// parseSluiceLog reads the daemon's log: recipient -> attempts.
func parseSluiceLog(r io.Reader) (map[string][]attempt, error) {
	out := map[string][]attempt{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := sluiceDelivery.FindStringSubmatch(sc.Text())
		if m == nil || m[3] == "requeued" {
			continue // a delivery cut by our own stop is no attempt
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		rcpt := strings.ToLower(strings.Trim(m[2], `"<>`))
		out[rcpt] = append(out[rcpt], attempt{at: at, deferred: m[3] == "deferred"})
	}
	return out, sc.Err()
}

// parsePostfixLog reads Postfix's maillog_file: recipient -> attempts.
// Its time stamps have no year and are local time: year is the run's.
func parsePostfixLog(r io.Reader, year int) (map[string][]attempt, error) {
	out := map[string][]attempt{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := postfixDelivery.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		at, err := time.ParseInLocation("Jan _2 15:04:05", m[1], time.Local)
		if err != nil {
			continue
		}
		at = at.AddDate(year, 0, 0)
		rcpt := strings.ToLower(m[2])
		out[rcpt] = append(out[rcpt], attempt{at: at, deferred: m[3] == "deferred"})
	}
	return out, sc.Err()
}

// maxUntried is the longest time from a deferral of a recipient to its
// next attempt (to end for one never tried again), and the number of
// deferrals.
func maxUntried(atts map[string][]attempt, end time.Time) (longest time.Duration, deferrals int) {
	for _, as := range atts {
		slices.SortStableFunc(as, func(a, b attempt) int { return a.at.Compare(b.at) })
		for i, a := range as {
			if !a.deferred {
				continue
			}
			deferrals++
			next := end
			if i+1 < len(as) {
				next = as[i+1].at
			}
			longest = max(longest, next.Sub(a.at))
		}
	}
	return longest, deferrals
}

// loadAttempts reads the side's relay log, sluice's (relay.log) or
// Postfix's (pf/maillog); nil when there is none.
func loadAttempts(dir string, year int) (map[string][]attempt, error) {
	if f, err := os.Open(filepath.Join(dir, "relay.log")); err == nil {
		defer f.Close()
		return parseSluiceLog(f)
	}
	if f, err := os.Open(filepath.Join(dir, "pf", "maillog")); err == nil {
		defer f.Close()
		return parsePostfixLog(f, year)
	}
	return nil, nil
}
