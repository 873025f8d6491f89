package policy

import (
	"testing"
	"time"

	"sluice/reply"
)

// TestRecipientTempFollowsHint: a per-mailbox reply that names a delay is
// retried just after it (capped by max_hint), not at the recipient's own
// backoff; without a hint the backoff applies (issue 11 item 3).
func TestRecipientTempFollowsHint(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) {
		o.RetryBase, o.RetryMax, o.MaxHint, o.GreylistMargin = time.Minute, 4*time.Hour, time.Hour, time.Second
	})
	tests := []struct {
		text     string
		attempts int
		want     time.Duration
	}{
		{"4.2.1 mailbox <u@d.test> receives too many messages, try again in 10 minutes", 1, 10*time.Minute + 1500*time.Millisecond},
		{"4.2.2 Mailbox full, retry in 2 hours", 1, time.Hour + 1500*time.Millisecond}, // max_hint
		{"4.2.2 Mailbox over quota, retry in 30 seconds", 6, 30*time.Second + 1500*time.Millisecond},
		{"4.2.2 Mailbox full", 3, RetryDelay(3, time.Minute, 4*time.Hour, 0.5)},
	}
	for _, tc := range tests {
		r := reply.Reply{Stage: reply.StageRcpt, Code: 452, Enhanced: tc.text[:5], Text: tc.text[6:]}
		dec := p.Observe("d.test", Outcome{Reply: r, Rcpt: "u@d.test", Attempts: tc.attempts})
		if dec.Verdict.Class != ClassRecipientTemp {
			t.Fatalf("%q: class %s", tc.text, dec.Verdict.Class)
		}
		if got := dec.RetryAt.Sub(c.Now()); got != tc.want {
			t.Errorf("%q (attempt %d): retry in %v, want %v", tc.text, tc.attempts, got, tc.want)
		}
	}
}

// TestMailboxHoldsItsOtherMessages (issue 11 family (b)): a mailbox that
// refuses for now ("receives too many messages") holds its other
// messages back (Hold) until the refused one's retry, without touching
// the destination; other mailboxes go, and a delivery to it lifts the
// hold.
func TestMailboxHoldsItsOtherMessages(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) { o.RetryBase, o.RetryMax = time.Minute, time.Hour })
	busy := reply.Reply{Stage: reply.StageRcpt, Code: 450, Enhanced: "4.2.1", Text: "The recipient's mailbox is receiving mail too fast, slow down"}
	dec := p.Observe("d.test", Outcome{Reply: busy, Rcpt: "u@d.test", Attempts: 1})
	if dec.Verdict.Class != ClassRecipientTemp {
		t.Fatalf("class %s", dec.Verdict.Class)
	}
	if until := p.Hold("d.test", "U@d.test"); until.Before(dec.RetryAt) {
		t.Errorf("another message to the mailbox held until %v, want from its retry %v", until, dec.RetryAt)
	}
	if until := p.Hold("d.test", "v@d.test"); !until.IsZero() {
		t.Errorf("another mailbox held until %v", until)
	}
	if s := mustState(t, p, "d.test"); s.State != StateOpen || s.Concurrency != 20 || s.Rate != 0 {
		t.Errorf("a mailbox's refusal touched the destination: %+v", s)
	}
	c.Set(dec.RetryAt)
	p.Observe("d.test", Outcome{Reply: accepted, Rcpt: "u@d.test", Attempts: 2})
	if until := p.Hold("d.test", "u@d.test"); !until.IsZero() {
		t.Errorf("held after a delivery: %v", until)
	}
}
