package scheduler

import (
	"time"

	"sluice/policy"
)

// Policy is what the scheduler asks package policy, in three small parts.
// *policy.Policy implements it; the scheduler's unit tests use a fake.
type Policy interface {
	Gate
	Judge
	Grouper
	// Sweep drops idle per-destination state (the loop calls it on every
	// turn; it costs what it drops).
	Sweep()
}

// Gate is the scheduler↔policy interface of issue 10: one question per
// destination, and the acts that follow the answer.
type Gate interface {
	// Ready is the question: how many more sessions may open at dest
	// now, and, when none may, when to ask again (zero: after the next
	// Release or outcome at dest). It takes nothing. The scheduler does
	// not ask again before that time (or that event), so a paused or
	// saturated destination costs nothing meanwhile.
	Ready(dest string) (sessions int, at time.Time)
	// Admit takes one session slot (ok=false: none after all); each
	// granted slot is given back with Release when the session ends.
	Admit(dest string) (ok bool, retryAt time.Time)
	Release(dest string)
	// Reserve takes one message's rate token: 0 = send now, >0 = not
	// taken, wait that long.
	Reserve(dest string) time.Duration
	// Continue reports whether an open session may take its next
	// message (no suspension, not above a lowered concurrency).
	Continue(dest string) bool
	// Paused reports a pause or suspension in force: no new connection,
	// not even in a slot already held.
	Paused(dest string) bool
	// MessagesPerConnection is the destination's limit (0 = none).
	MessagesPerConnection(dest string) int
	// Hold asks, before a recipient is tried, whether policy holds it
	// back until a time (a greylisted recipient waiting for the
	// destination's window to be learned); zero: go.
	Hold(dest, rcpt string) time.Time
}

// Judge reads replies: what to do with a recipient after an attempt.
type Judge interface {
	Observe(dest string, o policy.Outcome) policy.Decision
	ObserveExpiry(rcpt string) (suppress bool)
}

// Grouper maps recipient domains to destinations (policy owns the map).
type Grouper interface {
	// DestinationOf returns a fresh grouping, if one is known.
	DestinationOf(domain string) (string, bool)
	// Group records the grouping from an MX lookup and returns it.
	Group(domain string, mxHosts []string, lookupErr error) string
	// OverrideDomains lists domains worth grouping before any mail.
	OverrideDomains() []string
}

// Yielder is implemented by a policy shared with other nodes (package
// cluster): a session idling for more mail holds a slot of the fleet's,
// and Yield reports that another node waits for one at dest, so the idle
// session ends (locally the scheduler's own slot queue does this).
// Idle sessions ask every yieldCheck.
type Yielder interface {
	Yield(dest string) bool
}

// yieldCheck is how often an idle session asks a Yielder.
const yieldCheck = 200 * time.Millisecond

var _ Policy = (*policy.Policy)(nil)
