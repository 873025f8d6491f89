package policy

import (
	"errors"
	"fmt"
	"testing"

	"sluice/reply"
)

// TestTLSPolicyClass: a failure of the TLS policy (reply.ErrTLSPolicy)
// is its own class, tls-policy (issue 14 item 1): it pauses the
// destination, is never a throttle (the concurrency is untouched) and
// its category is tls.
func TestTLSPolicyClass(t *testing.T) {
	t.Parallel()
	p, _ := fixture(t)
	r := reply.Reply{Stage: reply.StageSTARTTLS,
		Err: fmt.Errorf("%w: mx.test[192.0.2.1]: x509: certificate is valid for other.test, not mx.test", reply.ErrTLSPolicy)}
	v := p.Classify(r)
	if v.Class != ClassTLSPolicy || v.Rule != "tls-policy" || v.Scope != ScopeNone {
		t.Fatalf("verdict = %+v, want class tls-policy, no scope", v)
	}
	if c := CategoryOf(r, v); c != CatTLS {
		t.Errorf("category = %s, want tls", c)
	}
	admitN(p, "d.test", 1)
	before := mustState(t, p, "d.test").Concurrency
	dec := p.Observe("d.test", Outcome{Reply: r, Attempts: 1})
	if !dec.EndSession || dec.Action != ActionRetry || dec.RetryAt.IsZero() {
		t.Errorf("decision = %+v, want the session ended and a retry after the pause", dec)
	}
	s := mustState(t, p, "d.test")
	if s.State != StatePaused {
		t.Errorf("state = %s, want paused", s.State)
	}
	if s.Concurrency != before {
		t.Errorf("concurrency %d -> %d: a tls-policy failure is not a throttle", before, s.Concurrency)
	}
	if s.Counts[ClassTLSPolicy] != 1 || s.Counts[ClassThrottle] != 0 {
		t.Errorf("counts = %v", s.Counts)
	}
	// A plain handshake error without the policy mark stays what it was.
	if v := p.Classify(reply.Reply{Stage: reply.StageSTARTTLS, Err: errors.New("tls: bad record MAC")}); v.Class != ClassUnavailable {
		t.Errorf("unmarked TLS error = %s", v.Class)
	}
}
