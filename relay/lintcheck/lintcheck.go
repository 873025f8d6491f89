// Package lintcheck runs the content lint (package lint, issue 16) on
// every message at acceptance, as the auth pre-check runs SPF, DKIM and
// DMARC: lint.mode "off" never runs it, "warn" logs each finding once per
// sender domain per finding per lint.warn_interval and counts every one,
// "enforce" also refuses a message with a block-level finding with 550
// 5.7.1 and the finding's one-sentence fix.
//
// Warn mode lints within a CPU budget (lint.warn_budget, Budget): when
// the relay is busy it lints a sample and the first message of each
// sender domain per lint.warn_interval; enforce lints every message.
//
// It also owns the small records behind it: Bulk, the messages per
// sender domain over a rolling day, seen and linted (lint's bulk-sender
// rule, and what the findings are out of), and Tally,
// the findings per sender domain and finding ID over the last day in
// hourly buckets (the dashboard and `sluice domains`).
//
// Promises:
//   - lint reads the spooled message through a reader, at most
//     lint.max_bytes of it: memory does not grow with the message size;
//   - nothing a client wrote reaches a reply unescaped, and log lines and
//     the admin API carry client strings as data, escaped on output;
//   - Bulk, Tally and Counters are bounded and safe for concurrent use;
//     the daemon makes one of each and shares them with every Checker a
//     reload builds, so that counts never go back.
package lintcheck

import (
	"maps"
	"sync"
	"sync/atomic"
)

// Counters count findings by finding ID and severity, for the metric
// sluice_lint_findings_total{id,severity}, and the messages linted and
// skipped (sluice_lint_checked_total, sluice_lint_skipped_total). Safe
// for concurrent use.
type Counters struct {
	mu      sync.Mutex
	m       map[[2]string]uint64
	checked atomic.Uint64
	skipped atomic.Uint64 // by warn mode's CPU budget
}

// Checks returns the messages linted and the messages warn mode skipped
// for its CPU budget.
func (c *Counters) Checks() (checked, skippedBudget uint64) {
	return c.checked.Load(), c.skipped.Load()
}

// NewCounters returns empty counters.
func NewCounters() *Counters { return &Counters{m: map[[2]string]uint64{}} }

func (c *Counters) add(id, severity string) {
	c.mu.Lock()
	c.m[[2]string{id, severity}]++
	c.mu.Unlock()
}

// Snapshot returns a copy of the counts, keyed by {id, severity}.
func (c *Counters) Snapshot() map[[2]string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}
