package admin

import "sync"

// labels bounds a label's values: the first max distinct values keep
// their name and every later one reads as OtherDestination. Prometheus
// keeps a series per label value forever, so an unbounded set (one per
// recipient domain of a mailing) would exhaust its memory.
type labels struct {
	mu  sync.Mutex
	max int
	set map[string]struct{}
}

func newLabels(max int) *labels {
	return &labels{max: max, set: map[string]struct{}{}}
}

func (l *labels) get(v string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.set[v]; ok {
		return v
	}
	if len(l.set) < l.max {
		l.set[v] = struct{}{}
		return v
	}
	return OtherDestination
}

// peek is get without admitting a new value.
func (l *labels) peek(v string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.set[v]; ok {
		return v
	}
	return OtherDestination
}
