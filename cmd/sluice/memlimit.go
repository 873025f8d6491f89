package main

import "math"

// applyMemoryLimit sets Go's soft memory limit (runtime/debug) to
// memory_limit, unless the GOMEMLIMIT environment variable is set: the
// runtime has applied that one already, and an operator's explicit
// setting wins over the file. It returns the limit in force and its
// source, for the start-up log.
//
// The limit is soft: near it the collector runs more often, so a burst
// (many large messages at once) is collected rather than left to double
// the heap (GOGC=100); it never makes an allocation fail. The default
// (512MB) is far above the steady state (tens of MB) and above the
// measured peak of 40 parallel 25 MB messages, see docs/design-notes.md.
func applyMemoryLimit(limit int64, getenv func(string) string, set func(int64) int64) (int64, string) {
	if getenv("GOMEMLIMIT") != "" {
		return set(-1), "GOMEMLIMIT" // a negative input only reads the current limit
	}
	if limit <= 0 {
		return set(math.MaxInt64), "none (memory_limit = 0)"
	}
	set(limit)
	return limit, "memory_limit"
}
