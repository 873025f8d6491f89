package queue

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
)

// TestSpace: the cached free-space signal refuses below the reserve and
// a declared size that would cross it, follows each Refresh, and never
// refuses on a failed reading (the commit decides then).
func TestSpace(t *testing.T) {
	t.Parallel()
	const mb = 1 << 20
	var free atomic.Int64
	var fail atomic.Bool
	statfs := func(string) (int64, error) {
		if fail.Load() {
			return 0, errors.New("statfs: boom")
		}
		return free.Load(), nil
	}
	free.Store(100 * mb)
	s := NewSpace("/data", 64*mb, statfs)
	steps := []struct {
		free   int64
		fail   bool
		size   int64
		refuse string // "" = accepted; else a part of the reason
	}{
		{free: 100 * mb, size: 0},
		{free: 100 * mb, size: 30 * mb},
		{free: 100 * mb, size: 40 * mb, refuse: "a message of 40.0 MB would leave less than the reserve"},
		{free: 64 * mb, size: 0, refuse: "64.0 MB free on /data, below the reserve queue.min_free_space (64.0 MB)"},
		{free: 2 * mb, size: 1, refuse: "2.0 MB free on /data"},
		{fail: true, size: 0},
		{free: 65 * mb, size: 512 << 10},
	}
	for i, st := range steps {
		free.Store(st.free)
		fail.Store(st.fail)
		s.Refresh()
		err := s.Check(st.size)
		switch {
		case st.refuse == "" && err != nil:
			t.Errorf("step %d: %v, want accepted", i, err)
		case st.refuse != "" && (!errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), st.refuse)):
			t.Errorf("step %d: %v, want ErrNoSpace saying %q", i, err, st.refuse)
		}
		if st.fail != (s.Err() != nil) {
			t.Errorf("step %d: Err() = %v", i, s.Err())
		}
	}
	if err := NewSpace("/data", 0, func(string) (int64, error) { return 0, nil }).Check(0); err == nil {
		t.Error("a full disk with no reserve is accepted")
	}
}
