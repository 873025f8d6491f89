package sim

import (
	"fmt"
	"os"
	"testing"
	"time"

	"sluice/internal/fakemx"
)

// TestRiseWithinSeconds (issue 11 item 3: "after a capacity rise, reach
// at least 80 % of the new capacity within 5 s"): receivers of a few
// shapes whose rate drops to a fifth for 15 s and comes back, with mail
// left for well after the rise, through the real scheduler and policy
// in virtual time with the bench's config. The drop's refusals say the
// receiver got smaller, so the rate before it is the one to return to.
func TestRiseWithinSeconds(t *testing.T) {
	t.Parallel()
	shapes := []struct{ k, r int }{{3, 100}, {5, 50}, {8, 200}, {2, 20}}
	for _, sh := range shapes {
		for _, seed := range []uint64{1} {
			t.Run(fmt.Sprintf("K%d-R%d-seed%d", sh.k, sh.r, seed), func(t *testing.T) {
				t.Parallel()
				// 10 s at R, 15 s at R/5, then 15 s' worth at R.
				n := sh.r*10 + sh.r/5*15 + sh.r*15
				sc := Scenario{Name: t.Name(), N: n, Config: benchConfig, Seed: seed, Trace: os.Getenv("SLUICE_RISE_TRACE") != "",
					Receiver: fakemx.Options{MaxSessions: sh.k, RatePerWindow: sh.r, Schedule: []fakemx.Limits{
						{At: 10 * time.Second, MaxSessions: sh.k, RatePerWindow: sh.r / 5},
						{At: 25 * time.Second, MaxSessions: sh.k, RatePerWindow: sh.r}}}}
				res := Run(t, sc)
				t.Logf("%v", res)
				if os.Getenv("SLUICE_RISE_TRACE") != "" {
					for _, s := range res.Trace {
						if s.At >= 0 && s.At <= 45*time.Second {
							t.Log(s)
						}
					}
				}
				if res.Recovery < 0 || res.Recovery > 5*time.Second {
					t.Errorf("80 %% of the raised capacity after %v, want within 5 s", res.Recovery)
				}
				// Reached and kept: a probe that overshoots and falls
				// back reaches 80 % for a second and no more, so the 5 s
				// after those 5 s must carry 80 % of the capacity too.
				rise := res.start.Add(25 * time.Second)
				kept := 0
				for _, rc := range res.Stats.Recipients {
					if d := rc.Delivered.Sub(rise); rc.Deliveries > 0 && d >= 5*time.Second && d < 10*time.Second {
						kept++
					}
				}
				if want := 0.8 * 5 * float64(sh.r); float64(kept) < want {
					t.Errorf("%d delivered 5-10 s after the rise, want at least 80 %% of the capacity (%.0f)", kept, want)
				}
				if got := res.RefusalsPerDelivery(); got > 0.05 {
					t.Errorf("refusals/delivery %.3f, want at most 0.05", got)
				}
			})
		}
	}
}
