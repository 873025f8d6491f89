// Package lru is a map that remembers when each entry was last used, so
// that entries idle for a period can be dropped in time proportional to
// the number dropped (issue 9 item 27: per-destination state and caches
// must not grow with every destination ever seen).
//
// A Map is not safe for concurrent use; its owner guards it.
package lru

import (
	"iter"
	"time"
)

// Map is a map from K to V kept in last-use order.
type Map[K comparable, V any] struct {
	m    map[K]*node[K, V]
	root node[K, V] // sentinel of a ring: root.next is the most recently used
}

type node[K comparable, V any] struct {
	prev, next *node[K, V]
	key        K
	val        V
	used       time.Time
}

// New returns an empty map.
func New[K comparable, V any]() *Map[K, V] {
	m := &Map[K, V]{m: map[K]*node[K, V]{}}
	m.root.prev, m.root.next = &m.root, &m.root
	return m
}

// Len is the number of entries.
func (m *Map[K, V]) Len() int { return len(m.m) }

// Get returns the value of k without counting it as a use.
func (m *Map[K, V]) Get(k K) (V, bool) {
	n, ok := m.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	return n.val, true
}

// Put sets k to v and counts it as used at now.
func (m *Map[K, V]) Put(k K, v V, now time.Time) {
	n, ok := m.m[k]
	if !ok {
		n = &node[K, V]{key: k}
		m.m[k] = n
	} else {
		m.unlink(n)
	}
	n.val = v
	m.front(n, now)
}

// Touch counts k as used at now; it reports whether k is present.
func (m *Map[K, V]) Touch(k K, now time.Time) bool {
	n, ok := m.m[k]
	if ok {
		m.unlink(n)
		m.front(n, now)
	}
	return ok
}

// Delete removes k.
func (m *Map[K, V]) Delete(k K) {
	if n, ok := m.m[k]; ok {
		m.unlink(n)
		delete(m.m, k)
	}
}

// All yields every entry, most recently used first. The map must not be
// changed during the iteration.
func (m *Map[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for n := m.root.next; n != &m.root; n = n.next {
			if !yield(n.key, n.val) {
				return
			}
		}
	}
}

// Evict looks at the entries last used at least idle before now, least
// recently used first, and removes each one for which keep returns false.
// An entry kept counts as used at now, so it is looked at again one idle
// period later. It returns how many entries it removed. The cost is one
// step per entry looked at: the removed ones, plus each kept entry at
// most once per idle period. keep may be nil (remove every idle entry);
// it must not change the map.
func (m *Map[K, V]) Evict(now time.Time, idle time.Duration, keep func(K, V) bool) int {
	removed := 0
	// Bounded by the size at the start: each entry is looked at once per
	// call even when idle is 0 and keep holds on to everything.
	for left := len(m.m); left > 0; left-- {
		n := m.root.prev
		if n == &m.root || now.Sub(n.used) < idle {
			break
		}
		m.unlink(n)
		if keep != nil && keep(n.key, n.val) {
			m.front(n, now)
			continue
		}
		delete(m.m, n.key)
		removed++
	}
	return removed
}

// DropOldest removes the least recently used entry; it reports whether
// there was one. A cache whose entries have different lifetimes uses it
// to stay within a size bound.
func (m *Map[K, V]) DropOldest() bool {
	n := m.root.prev
	if n == &m.root {
		return false
	}
	m.unlink(n)
	delete(m.m, n.key)
	return true
}

func (m *Map[K, V]) unlink(n *node[K, V]) {
	n.prev.next = n.next
	n.next.prev = n.prev
	n.prev, n.next = nil, nil
}

func (m *Map[K, V]) front(n *node[K, V], now time.Time) {
	n.used = now
	n.prev = &m.root
	n.next = m.root.next
	m.root.next.prev = n
	m.root.next = n
}
