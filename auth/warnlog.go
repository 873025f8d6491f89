package auth

import (
	"sync"
	"time"
)

// warnEvery bounds how often warn mode logs the same sender domain: one
// line a minute per From domain says what to fix; one line per message
// drowns the log of a busy application (the metric still counts them all).
const warnEvery = time.Minute

// warnGate decides which warn-mode verdicts are logged, and how many of
// the same domain were left out since the last line.
type warnGate struct {
	mu   sync.Mutex
	last map[string]warnState
}

type warnState struct {
	at      time.Time
	skipped int
}

// allow reports whether to log a verdict for domain at now, and how many
// were skipped since the last logged one.
func (g *warnGate) allow(domain string, now time.Time) (bool, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.last == nil {
		g.last = map[string]warnState{}
	}
	s, ok := g.last[domain]
	if ok && now.Sub(s.at) < warnEvery {
		s.skipped++
		g.last[domain] = s
		return false, 0
	}
	if len(g.last) >= 10000 {
		clear(g.last) // bounded: forgetting only means one more log line
	}
	g.last[domain] = warnState{at: now}
	return true, s.skipped
}
