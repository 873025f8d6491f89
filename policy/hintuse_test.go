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
