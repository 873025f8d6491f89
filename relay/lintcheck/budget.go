package lintcheck

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Budget is the CPU time warn mode may spend on lint: a token bucket of
// lint time, refilled at share × GOMAXPROCS seconds per second, holding
// at most one second's worth. Warn mode is advice: when the relay is
// busy it lints a sample, so that lint costs at most its share of the
// machine; with spare capacity the bucket stays full and every message
// is linted. Enforce mode never asks (the operator chose to pay for it).
//
// Each check is charged afterwards with its measured duration (wall
// time from the Checker's clock: on a loaded machine that counts the
// time a check waited for a CPU too, so the budget errs towards linting
// less). Safe for concurrent use; the daemon owns one across reloads,
// and a reload changes its share (Set).
type Budget struct {
	procs int

	mu   sync.Mutex
	all  bool          // share >= 1: lint everything, no bookkeeping
	lim  *rate.Limiter // tokens are microseconds of lint time
	last time.Time     // latest time seen: the bucket never goes back
}

// NewBudget returns a budget for a machine of procs CPUs (GOMAXPROCS)
// at share (0 to 1; 1 or more lints everything), its bucket full.
func NewBudget(procs int, share float64, now time.Time) *Budget {
	b := &Budget{procs: max(procs, 1), last: now, all: share >= 1}
	perSec := b.perSec(share)
	b.lim = rate.NewLimiter(rate.Limit(perSec), int(perSec))
	return b
}

// perSec is the lint time of share in µs per second: share × procs
// seconds per second. The bucket holds one second's worth.
func (b *Budget) perSec(share float64) float64 { return max(share, 0) * float64(b.procs) * 1e6 }

// Set changes the share at now (a reload). The lint time already in the
// bucket is kept, up to the new bucket's size; a debt is kept whole.
func (b *Budget) Set(share float64, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now = b.clock(now)
	b.all = share >= 1
	perSec := b.perSec(share)
	b.lim.SetLimitAt(now, rate.Limit(perSec))
	b.lim.SetBurstAt(now, int(perSec))
}

// clock returns now, or the latest time seen when now is earlier:
// callers on several goroutines read the clock before taking the lock,
// and rate.Limiter would refill the overlap twice.
func (b *Budget) clock(now time.Time) time.Time {
	if now.Before(b.last) {
		return b.last
	}
	b.last = now
	return now
}

// All reports whether the share is 100 %: every message is linted.
func (b *Budget) All() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.all
}

// Allow reports whether a message may be linted at now. A sampled
// message needs lint time left in the bucket. The first message of a
// sender domain in an interval (first) may also take the bucket into
// debt, down to one second's worth (at least 1 µs, so that a 0 % budget
// still sees every domain): every domain is seen under load, and a
// client that rotates its From domains cannot take lint past its budget
// by more than that second.
func (b *Budget) Allow(now time.Time, first bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.all {
		return true
	}
	tokens := b.lim.TokensAt(b.clock(now))
	if first {
		return tokens > -float64(max(b.lim.Burst(), 1))
	}
	return tokens > 0
}

// Charge takes d of lint time from the bucket at now. The bucket may go
// into debt: the checks that made it are done, and the refill pays it
// back before the next sampled message is linted.
func (b *Budget) Charge(d time.Duration, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.all {
		return
	}
	n := int((d + time.Microsecond - 1) / time.Microsecond)
	// ReserveN refuses more than the burst and takes nothing: charge at
	// most the burst (a check longer than a second's budget).
	n = min(max(n, 1), b.lim.Burst())
	if n > 0 {
		b.lim.ReserveN(b.clock(now), n)
	}
}

// Tokens is the lint time left in the bucket at now (negative: a debt);
// for tests and the bench.
func (b *Budget) Tokens(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return time.Duration(b.lim.TokensAt(b.clock(now)) * float64(time.Microsecond))
}
