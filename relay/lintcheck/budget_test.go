package lintcheck

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"sluice/config"
	"sluice/internal/fakeclock"
)

// budgetFixture is a warn-mode checker on a 1-CPU budget whose checks
// take cost of virtual time each: the message's reader moves the fake
// clock, so the Checker measures cost around lint.Check.
type budgetFixture struct {
	c      *Checker
	clk    *fakeclock.Clock
	cnt    *Counters
	bulk   *Bulk
	budget *Budget
	cost   time.Duration
	opens  int
}

func newBudgetFixture(t *testing.T, mode, share string, cost time.Duration) *budgetFixture {
	t.Helper()
	f := &budgetFixture{clk: fakeclock.New(), cnt: NewCounters(), bulk: NewBulk(100), cost: cost}
	p, err := config.ParsePercent(share)
	if err != nil {
		t.Fatal(err)
	}
	f.budget = NewBudget(1, float64(p), f.clk.Now())
	f.c = f.reload(t, mode, share)
	return f
}

// reload builds a checker as a reload does: new options, the daemon's
// Bulk, Counters and Budget.
func (f *budgetFixture) reload(t *testing.T, mode, share string) *Checker {
	t.Helper()
	cfg := config.Default()
	cfg.Lint.Mode = mode
	p, err := config.ParsePercent(share)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Lint.WarnBudget = p
	o := OptionsFrom(cfg)
	o.Counters, o.Bulk, o.Budget, o.Now = f.cnt, f.bulk, f.budget, f.clk.Now
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// check runs one message of domain through c; it reports whether lint
// read it.
func (f *budgetFixture) check(t *testing.T, c *Checker, domain string) bool {
	t.Helper()
	msg := capsMsg(domain)
	before := f.opens
	in := Input{MailFrom: "b@" + domain, Header: msg[:bytes.Index(msg, []byte("\r\n\r\n"))+4], Open: func() (io.ReadCloser, error) {
		f.opens++
		f.clk.Advance(f.cost) // lint takes cost
		return io.NopCloser(bytes.NewReader(msg)), nil
	}}
	if err := c.Check(context.Background(), in); err != nil && c.Mode() == ModeWarn {
		t.Fatalf("warn mode refused: %v", err)
	}
	return f.opens > before
}

func (f *budgetFixture) checks(t *testing.T, c *Checker, domain string, n int) (linted int) {
	t.Helper()
	for range n {
		if f.check(t, c, domain) {
			linted++
		}
	}
	return linted
}

func TestBudgetSkipsWhenSpentAndRefills(t *testing.T) {
	t.Parallel()
	// 1 % of one CPU: 10 ms of lint per second, 10 ms in the bucket.
	f := newBudgetFixture(t, ModeWarn, "1%", 4*time.Millisecond)
	// A full bucket pays for three 4 ms checks (10, 6, 2 ms left before
	// each); then it is in debt and the rest are skipped.
	if got := f.checks(t, f.c, "shop.test", 10); got != 3 {
		t.Fatalf("%d of 10 messages linted with a 10 ms budget at 4 ms each, want 3", got)
	}
	checked, skipped := f.cnt.Checks()
	if checked != 3 || skipped != 7 {
		t.Errorf("counters checked %d skipped %d, want 3 and 7", checked, skipped)
	}
	if f.check(t, f.c, "shop.test") {
		t.Error("linted while the bucket is in debt")
	}
	// The debt is about 2 ms: a second refills 10 ms, enough for two
	// checks and a third that takes the bucket into debt again.
	f.clk.Advance(time.Second)
	if got := f.checks(t, f.c, "shop.test", 5); got != 3 {
		t.Errorf("%d of 5 linted after a second's refill, want 3", got)
	}
	// The tally reads findings "of the linted": 6 of 16 messages.
	f.c.tally.Add("shop.test", []Seen{{ID: "subject-caps", Severity: "info"}}, f.clk.Now())
	r := f.c.tally.Report(f.clk.Now(), f.bulk, 0)
	if len(r.Senders) != 1 || r.Senders[0].Messages != 16 || r.Senders[0].Linted != 6 {
		t.Errorf("report %+v, want 16 messages, 6 linted", r.Senders)
	}
}

func TestBudgetFirstMessageOfEachDomainLinted(t *testing.T) {
	t.Parallel()
	f := newBudgetFixture(t, ModeWarn, "1%", 4*time.Millisecond)
	f.checks(t, f.c, "shop.test", 10) // the bucket is in debt
	if !f.check(t, f.c, "news.test") {
		t.Error("a sender domain's first message was not linted under load")
	}
	if f.check(t, f.c, "news.test") {
		t.Error("a sender domain's second message in the interval was linted past the budget")
	}
	// A warn_interval later, shop.test's next message is a first again.
	f.clk.Advance(time.Minute)
	f.checks(t, f.c, "shop.test", 10)
	f.clk.Advance(time.Minute)
	if !f.check(t, f.c, "shop.test") {
		t.Error("the first message of a new interval was not linted")
	}
	// Firsts may take the bucket into debt by one second's worth (10
	// ms), no more: a client rotating its From domains cannot take lint
	// past its budget.
	n := 0
	for i := range 100 {
		if f.check(t, f.c, "d"+string(rune('a'+i%26))+string(rune('a'+i/26))+".test") {
			n++
		}
	}
	if n > 5 {
		t.Errorf("%d of 100 new sender domains linted at 4 ms each on a 10 ms budget, want at most 5", n)
	}
	if tok := f.budget.Tokens(f.clk.Now()); tok < -15*time.Millisecond {
		t.Errorf("debt %v, want at most about one second's budget (10 ms)", tok)
	}
}

func TestEnforceIgnoresBudget(t *testing.T) {
	t.Parallel()
	f := newBudgetFixture(t, ModeEnforce, "0%", 4*time.Millisecond)
	if got := f.checks(t, f.c, "shop.test", 20); got != 20 {
		t.Errorf("enforce linted %d of 20 messages, want every one", got)
	}
	if checked, skipped := f.cnt.Checks(); checked != 20 || skipped != 0 {
		t.Errorf("counters checked %d skipped %d, want 20 and 0", checked, skipped)
	}
}

func TestWarnBudgetAllLintsEverything(t *testing.T) {
	t.Parallel()
	f := newBudgetFixture(t, ModeWarn, "100%", 50*time.Millisecond)
	if got := f.checks(t, f.c, "shop.test", 100); got != 100 {
		t.Errorf("warn_budget 100%% linted %d of 100 messages, want every one", got)
	}
}

func TestReloadChangesBudget(t *testing.T) {
	t.Parallel()
	f := newBudgetFixture(t, ModeWarn, "1%", 4*time.Millisecond)
	f.checks(t, f.c, "shop.test", 10) // in debt
	all := f.reload(t, ModeWarn, "100%")
	if got := f.checks(t, all, "shop.test", 10); got != 10 {
		t.Errorf("after a reload to 100%%, %d of 10 linted, want 10", got)
	}
	// Back to 1 %: at most a second of it (10 ms) is left from the
	// 100 % bucket, three checks' worth.
	one := f.reload(t, ModeWarn, "1%")
	if got := f.checks(t, one, "shop.test", 10); got != 3 {
		t.Errorf("after a reload back to 1%%, %d of 10 linted, want 3", got)
	}
	f.clk.Advance(100 * time.Millisecond) // 1 ms at 1 %: still in debt
	if got := f.checks(t, one, "shop.test", 20); got > 1 {
		t.Errorf("at 1%% after 100 ms, %d of 20 linted, want at most 1", got)
	}
	// At 50 % the same 100 ms refill 50 ms, and every 4 ms check
	// refills 2 ms while it runs: twenty checks fit.
	half := f.reload(t, ModeWarn, "50%")
	f.clk.Advance(100 * time.Millisecond)
	if got := f.checks(t, half, "shop.test", 20); got != 20 {
		t.Errorf("at 50%% after 100 ms, %d of 20 linted, want 20", got)
	}
}

func TestBudgetSetKeepsDebt(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC)
	b := NewBudget(2, 0.03, now) // 60 ms a second
	if tok := b.Tokens(now); tok != 60*time.Millisecond {
		t.Fatalf("a new bucket holds %v, want 60ms (one second of 3%% of 2 CPUs)", tok)
	}
	b.Charge(80*time.Millisecond, now) // more than the bucket: charged the bucket
	if tok := b.Tokens(now); tok != 0 {
		t.Errorf("after charging more than the bucket, %v left, want 0", tok)
	}
	b.Charge(20*time.Millisecond, now)
	b.Set(0.02, now) // 40 ms a second
	if tok := b.Tokens(now); tok != -20*time.Millisecond {
		t.Errorf("a reload changed the debt to %v, want -20ms", tok)
	}
	if b.Allow(now, false) || !b.Allow(now, true) {
		t.Error("in debt: want sampled skipped, a first allowed (debt under one second's worth)")
	}
	// A clock read before the lock by another goroutine, earlier than
	// the last seen, refills nothing twice.
	b.Tokens(now.Add(time.Second))
	if tok := b.Tokens(now); tok != 20*time.Millisecond {
		t.Errorf("tokens %v after a second at 40 ms/s from -20 ms, read with an earlier clock, want 20ms", tok)
	}
}
