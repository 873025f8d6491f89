package main

import (
	"math"
	"testing"
)

func TestApplyMemoryLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		cfg      int64
		env      string
		wantSet  int64 // what reaches the runtime; -1 = only read
		wantFrom string
	}{
		{"from the config", 512 << 20, "", 512 << 20, "memory_limit"},
		{"the environment wins", 512 << 20, "300MiB", -1, "GOMEMLIMIT"},
		{"no limit", 0, "", math.MaxInt64, "none (memory_limit = 0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var set []int64
			current := int64(300 << 20) // what the runtime took from GOMEMLIMIT
			got, from := applyMemoryLimit(tt.cfg, func(k string) string {
				if k == "GOMEMLIMIT" {
					return tt.env
				}
				return ""
			}, func(v int64) int64 {
				set = append(set, v)
				return current
			})
			if len(set) != 1 || set[0] != tt.wantSet || from != tt.wantFrom {
				t.Errorf("set %v, from %q; want %d, %q", set, from, tt.wantSet, tt.wantFrom)
			}
			if tt.env != "" && got != current || tt.env == "" && tt.cfg > 0 && got != tt.cfg {
				t.Errorf("limit in force = %d", got)
			}
		})
	}
}
