package lru

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func keys(m *Map[string, int]) []string {
	var out []string
	for k := range m.All() {
		out = append(out, k)
	}
	return out
}

func TestOrderAndEvict(t *testing.T) {
	t.Parallel()
	m := New[string, int]()
	m.Put("a", 1, t0)
	m.Put("b", 2, t0.Add(time.Second))
	m.Put("c", 3, t0.Add(2*time.Second))
	m.Touch("a", t0.Add(3*time.Second))
	if got := keys(m); len(got) != 3 || got[0] != "a" || got[1] != "c" || got[2] != "b" {
		t.Fatalf("order %v, want a c b", got)
	}
	if v, ok := m.Get("b"); !ok || v != 2 {
		t.Fatalf("Get(b) = %v %v", v, ok)
	}
	// Get is not a use: b is still the oldest.
	if n := m.Evict(t0.Add(10*time.Second), 8500*time.Millisecond, nil); n != 1 {
		t.Fatalf("evicted %d, want 1 (b)", n)
	}
	if _, ok := m.Get("b"); ok {
		t.Fatal("b not evicted")
	}
	// c is idle but kept: it moves to the front and is looked at again
	// one idle period later.
	calls := 0
	n := m.Evict(t0.Add(20*time.Second), 8*time.Second, func(k string, _ int) bool { calls++; return k == "c" })
	if n != 1 || calls != 2 || m.Len() != 1 {
		t.Fatalf("evicted %d with %d calls, len %d; want 1, 2, 1", n, calls, m.Len())
	}
	if n := m.Evict(t0.Add(21*time.Second), 8*time.Second, nil); n != 0 {
		t.Fatalf("kept entry evicted before another idle period: %d", n)
	}
	if n := m.Evict(t0.Add(28*time.Second), 8*time.Second, nil); n != 1 || m.Len() != 0 {
		t.Fatalf("evicted %d, len %d", n, m.Len())
	}
}

func TestEvictZeroIdleKeepAllTerminates(t *testing.T) {
	t.Parallel()
	m := New[string, int]()
	for i, k := range []string{"a", "b", "c"} {
		m.Put(k, i, t0)
	}
	calls := 0
	if n := m.Evict(t0, 0, func(string, int) bool { calls++; return true }); n != 0 || calls != 3 {
		t.Fatalf("evicted %d with %d calls, want 0 and 3", n, calls)
	}
	m.Delete("b")
	m.Delete("zz")
	if got := keys(m); len(got) != 2 {
		t.Fatalf("after delete: %v", got)
	}
}

// TestEvictCostIsPerEvicted: with many fresh entries and a few idle ones,
// Evict looks only at the idle ones.
func TestEvictCostIsPerEvicted(t *testing.T) {
	t.Parallel()
	m := New[int, int]()
	for i := range 5 {
		m.Put(i, i, t0)
	}
	for i := 5; i < 10000; i++ {
		m.Put(i, i, t0.Add(time.Hour))
	}
	calls := 0
	n := m.Evict(t0.Add(time.Hour), time.Minute, func(int, int) bool { calls++; return false })
	if n != 5 || calls != 5 {
		t.Fatalf("evicted %d after %d calls, want 5 and 5", n, calls)
	}
}

func TestDropOldest(t *testing.T) {
	t.Parallel()
	m := New[string, int]()
	if m.DropOldest() {
		t.Fatal("DropOldest on an empty map reported an entry")
	}
	m.Put("a", 1, t0)
	m.Put("b", 2, t0.Add(time.Second))
	m.Touch("a", t0.Add(2*time.Second))
	if !m.DropOldest() {
		t.Fatal("DropOldest found nothing")
	}
	if got := keys(m); len(got) != 1 || got[0] != "a" {
		t.Fatalf("left %v, want a", got)
	}
}
