package policy

import "time"

// RetryDelay is the exponential backoff used for recipients and for
// destination pauses: base*2^(attempt-1), capped at max, then jittered by
// a factor in [0.8, 1.2) (capped again at max). Jitter matters: without it
// a restart or a reopened destination retries everything at the same
// instant. attempt < 1 counts as 1; a huge attempt cannot overflow.
// rnd is a number in [0,1).
func RetryDelay(attempt int, base, max time.Duration, rnd float64) time.Duration {
	if base <= 0 {
		return 0
	}
	if attempt < 1 {
		attempt = 1
	}
	if max <= 0 {
		max = base
	}
	d := base
	for i := 1; i < attempt && d < max; i++ {
		if d > max/2 {
			d = max
			break
		}
		d *= 2
	}
	if d > max {
		d = max
	}
	if rnd < 0 || rnd >= 1 || rnd != rnd {
		rnd = 0.5
	}
	j := time.Duration(float64(d) * (0.8 + 0.4*rnd))
	if j > max {
		j = max
	}
	if j < 0 {
		j = 0
	}
	return j
}
