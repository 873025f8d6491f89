package policy

import (
	"testing"
	"time"
)

// TestSplitJoinLimits (issue 12 item 4): the runtime limits leave a
// stored state (SplitLimits) and come back into it (JoinLimits), into a
// destination with no state too, and a policy restored from the result
// has them; a state that has its own limits keeps them.
func TestSplitJoinLimits(t *testing.T) {
	t.Parallel()
	store := &memStore{}
	p, c := fixture(t, func(o *Options) { o.Store = store })
	const d = "example.com"
	if err := p.SetLimits(d, Limits{MaxConcurrency: 2, Rate: 1.5}); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	state := store.m[d]
	rest, l, err := SplitLimits(state)
	if err != nil || l == nil || *l != (Limits{MaxConcurrency: 2, Rate: 1.5}) {
		t.Fatalf("SplitLimits = %v, %v", l, err)
	}
	if _, l2, _ := SplitLimits(rest); l2 != nil {
		t.Fatalf("the rest still has limits %+v", l2)
	}
	back, set, err := JoinLimits(rest, *l)
	if err != nil || !set || string(back) != string(state) {
		t.Fatalf("JoinLimits = %s, %v, %v; want %s", back, set, err, state)
	}
	if _, set, _ := JoinLimits(state, Limits{MaxConcurrency: 9}); set {
		t.Error("JoinLimits replaced limits the state already had")
	}
	fresh, set, err := JoinLimits(nil, Limits{MaxConcurrency: 3, Rate: 2})
	if err != nil || !set {
		t.Fatalf("JoinLimits(nil) = %v, %v", set, err)
	}
	if _, _, err := JoinLimits(nil, Limits{}); err == nil {
		t.Error("JoinLimits took max_concurrency 0")
	}

	// A policy started on the joined states has the limits.
	p2, _ := fixture(t, func(o *Options) { o.Store = &memStore{m: map[string][]byte{d: back, "other.test": fresh}} })
	for name, want := range map[string]int{d: 2, "other.test": 3} {
		st := mustState(t, p2, name)
		if st.MaxConcurrency != want || st.Concurrency > want {
			t.Errorf("%s restored with %+v, want max concurrency %d", name, st, want)
		}
	}
}
