package main

import (
	"slices"
	"time"
)

func sortDurations(d []time.Duration) { slices.Sort(d) }

// quantile is the nearest-rank q-quantile of sorted d (q in [0,1]); 0 for
// an empty slice.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(q*float64(len(d)) + 0.999999)
	i = min(max(i, 1), len(d))
	return d[i-1]
}
