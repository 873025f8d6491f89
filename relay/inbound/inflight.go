package inbound

import "sync"

// InFlight bounds the bytes of the inbound transactions open at once
// (limits.max_inflight_bytes): each reserves, at MAIL, the size its
// client declared with SIZE= (RFC 1870), else the maximum message size,
// and gives it back when the transaction ends (after DATA, RSET, or the
// connection closing). A MAIL that would exceed the bound gets 452 4.3.1
// and the client retries later: the relay takes no more at once than it
// is configured to carry, whatever the number of connections.
// One InFlight is shared by every Server of a daemon (Options),
// so the bound holds across listeners. A nil *InFlight bounds nothing.
type InFlight struct {
	mu  sync.Mutex
	max int64 // 0 = unbounded
	n   int64 // counted even when unbounded, so that SetMax may bound it later
}

// NewInFlight returns a bound of max bytes (0 = unbounded).
func NewInFlight(max int64) *InFlight { return &InFlight{max: max} }

// SetMax changes the bound (a config reload). Transactions already open
// keep what they reserved; a lower bound refuses new ones until enough
// of them end.
func (f *InFlight) SetMax(max int64) {
	f.mu.Lock()
	f.max = max
	f.mu.Unlock()
}

// Max returns the bound (0 = unbounded).
func (f *InFlight) Max() int64 {
	if f == nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.max
}

// reserve takes n bytes, or reports false when they do not fit. One
// transaction always fits an empty budget, so a message larger than the
// budget is not refused forever.
func (f *InFlight) reserve(n int64) bool {
	if f == nil {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.max > 0 && f.n > 0 && f.n+n > f.max {
		return false
	}
	f.n += n
	return true
}

// release gives n bytes back.
func (f *InFlight) release(n int64) {
	if f == nil || n == 0 {
		return
	}
	f.mu.Lock()
	f.n -= n
	f.mu.Unlock()
}

// Used returns the bytes reserved now.
func (f *InFlight) Used() int64 {
	if f == nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}
