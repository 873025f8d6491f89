package config

import "time"

// leaseMargin covers what a delivery does besides waiting on the network:
// a rate-token wait on a warm connection (at most a second), the MX
// lookup, scheduling.
const leaseMargin = time.Minute

// LeaseTimeout is how long the queue keeps a recipient leased (in flight)
// before the lease may be reclaimed while the daemon runs: longer than
// one delivery can take when every step runs to its timeout. That is two
// connection attempts (an opportunistic STARTTLS that fails is retried in
// plaintext on a fresh connection), each a dial and five commands
// (greeting, EHLO, STARTTLS, EHLO, AUTH), then RSET, MAIL, RCPT and DATA,
// the body write and the final reply (RFC 5321 §4.5.3.2), plus a margin.
// With the defaults it is 1h32m. It is derived, not configured, so that
// it cannot fall below the timeouts it must outlast; a delivery that
// outlasts it anyway (many recipients, each RCPT under its own timeout)
// keeps its lease, because the scheduler reports it still held.
func (d Delivery) LeaseTimeout() time.Duration {
	dial, cmd, data := time.Duration(d.DialTimeout), time.Duration(d.CommandTimeout), time.Duration(d.DataTimeout)
	return 2*(dial+5*cmd) + 4*cmd + 2*data + leaseMargin
}
