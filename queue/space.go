package queue

import (
	"fmt"
	"sync/atomic"
)

// Space is a cached reading of the free space on the file system of the
// data directory, against the free-space reserve (queue.min_free_space).
// Its owner refreshes it periodically (the daemon: once a second), so
// that the SMTP side can refuse a MAIL below the reserve with 452 4.3.1
// (RFC 1870 §6.1) before the client uploads anything, and /readyz can say
// why it is not ready, without a statfs per command. Enqueue still checks
// for itself when it commits: the flag is a cheap early answer, the
// commit is the guarantee.
//
// Every method is safe for concurrent use; Check costs one atomic load.
type Space struct {
	dir     string
	reserve int64
	statfs  func(dir string) (int64, error)
	last    atomic.Pointer[spaceReading]
}

type spaceReading struct {
	free int64
	err  error
}

// NewSpace returns a Space for dir with the given reserve (<= 0: no
// reserve). statfs returns the bytes available to us on dir's file
// system; nil means the real statfs(2). It takes a first reading.
func NewSpace(dir string, reserve int64, statfs func(dir string) (int64, error)) *Space {
	if statfs == nil {
		statfs = freeBytes
	}
	s := &Space{dir: dir, reserve: reserve, statfs: statfs}
	s.Refresh()
	return s
}

// Refresh takes a new reading and returns the state it leads to: nil
// when there is room, else what Check(0) would return.
func (s *Space) Refresh() error {
	free, err := s.statfs(s.dir)
	s.last.Store(&spaceReading{free: free, err: err})
	return s.Check(0)
}

// Check reports whether a message of size bytes (0 when the client did
// not declare one) can be taken now: nil, or an error wrapping
// ErrNoSpace that says why. An unreadable file system is not reported
// here (the commit will say what is wrong); Err reports it.
func (s *Space) Check(size int64) error {
	r := s.last.Load()
	if r == nil || r.err != nil {
		return nil
	}
	headroom := r.free - s.reserve
	switch {
	case headroom <= 0:
		return fmt.Errorf("%s free on %s, below the reserve queue.min_free_space (%s): %w",
			bytesText(r.free), s.dir, bytesText(s.reserve), ErrNoSpace)
	case size > headroom:
		// RFC 1870 §6.1: a size the server cannot take now, but may
		// later, is a temporary refusal.
		return fmt.Errorf("a message of %s would leave less than the reserve queue.min_free_space (%s) on %s (%s free): %w",
			bytesText(size), bytesText(s.reserve), s.dir, bytesText(r.free), ErrNoSpace)
	}
	return nil
}

// Err is the error of the last reading (statfs failed), or nil.
func (s *Space) Err() error {
	if r := s.last.Load(); r != nil && r.err != nil {
		return r.err
	}
	return nil
}

// bytesText prints a byte count the way the config writes sizes
// (1024-based).
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, suffix := float64(n), ""
	for _, u := range []string{"KB", "MB", "GB", "TB"} {
		v /= unit
		suffix = u
		if v < unit {
			break
		}
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}
