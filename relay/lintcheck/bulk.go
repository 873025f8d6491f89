package lintcheck

import (
	"sync"
	"time"

	"sluice/internal/lru"
)

// Bulk counts the messages of each sender domain over a rolling day, so
// that lint knows a bulk sender (lint.bulk_per_day) and the tally can say
// how many messages a domain's findings are out of. It remembers at most
// a fixed number of domains: a new domain past the bound evicts the one
// least recently seen, which a busy bulk sender never is. Safe for
// concurrent use; the daemon owns one, across reloads.
type Bulk struct {
	mu  sync.Mutex
	max int
	m   *lru.Map[string, *bulkDomain]
}

// bulkDomain is one domain's messages: seen (every message, for the
// bulk rule) and linted (warn mode's budget may skip some), so that the
// findings read as "of the linted".
type bulkDomain struct {
	seen, linted hours
}

// NewBulk returns a counter of at most maxDomains domains (at least 1).
func NewBulk(maxDomains int) *Bulk {
	return &Bulk{max: max(maxDomains, 1), m: lru.New[string, *bulkDomain]()}
}

// Add counts one message of domain at now and returns the domain's count
// over the last day, this message included.
func (b *Bulk) Add(domain string, now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	h, ok := b.m.Get(domain)
	if !ok {
		makeRoom(b.m, b.max, now)
		h = &bulkDomain{}
	}
	b.m.Put(domain, h, now)
	h.seen.add(now)
	return h.seen.total(now)
}

// Linted counts one message of domain, already counted by Add, as
// linted.
func (b *Bulk) Linted(domain string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h, ok := b.m.Get(domain); ok {
		h.linted.add(now)
	}
}

// Count returns the domain's count over the last day without adding.
func (b *Bulk) Count(domain string, now time.Time) int {
	seen, _ := b.Counts(domain, now)
	return seen
}

// Counts returns the domain's messages seen and linted over the last
// day.
func (b *Bulk) Counts(domain string, now time.Time) (seen, linted int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h, ok := b.m.Get(domain); ok {
		return h.seen.total(now), h.linted.total(now)
	}
	return 0, 0
}

// Len is the number of domains remembered.
func (b *Bulk) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m.Len()
}

// makeRoom makes room for one more domain in m, of at most bound: when it
// is full, the domains silent for a day (they count nothing) go first,
// else the least recently seen. Bulk and Tally share it.
func makeRoom[V any](m *lru.Map[string, V], bound int, now time.Time) {
	if m.Len() < bound {
		return
	}
	if m.Evict(now, Day, nil) == 0 {
		m.DropOldest()
	}
}
