//go:build !race

package sim

import (
	"testing"
	"time"
)

// TestTwoThousandMessagesQuickly: a scenario of 2,000 messages runs in
// 200 ms or less (without -race), so that the simulator serves as a
// table test (issue 11 item 1). The best of three runs counts: the
// machine is shared.
func TestTwoThousandMessagesQuickly(t *testing.T) {
	sc := benchScenarios()[0]
	if sc.N != 2000 {
		t.Fatalf("the first bench scenario has %d messages", sc.N)
	}
	best := time.Hour
	for range 3 {
		r := Run(t, sc)
		if r.Delivered != sc.N {
			t.Fatalf("%v", r)
		}
		best = min(best, r.Wall)
	}
	t.Logf("%s, %d messages: %v", sc.Name, sc.N, best)
	if best > 200*time.Millisecond {
		t.Errorf("best of three runs took %v, want at most 200ms", best)
	}
}
