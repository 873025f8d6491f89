// Package warngate decides which warn-mode lines are logged: one per key
// (a sender domain, a domain and a finding) per interval. One line per
// message would drown the log of a busy application; the metrics still
// count every message. Shared by the auth pre-check and the content lint
// so that both warn modes behave alike. A Gate is safe for concurrent use.
package warngate

import (
	"sync"
	"time"
)

// maxKeys bounds the memory of a gate: past it, everything is forgotten
// at once, which only costs one more log line per key.
const maxKeys = 10000

// Gate lets one line per key through per interval.
type Gate struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]state
}

type state struct {
	at      time.Time
	skipped int
}

// New returns a gate that lets a key through once per every.
func New(every time.Duration) *Gate {
	return &Gate{every: every, last: map[string]state{}}
}

// Allow reports whether to log a line for key at now, and how many lines
// of the same key were left out since the last one logged.
func (g *Gate) Allow(key string, now time.Time) (bool, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.last[key]
	if ok && now.Sub(s.at) < g.every {
		s.skipped++
		g.last[key] = s
		return false, 0
	}
	if len(g.last) >= maxKeys {
		clear(g.last)
	}
	g.last[key] = state{at: now}
	return true, s.skipped
}
