package sim

import (
	"math"
	"time"

	"sluice/internal/fakemx"
)

// idealStep is the resolution of the ideal sender's model.
const idealStep = 10 * time.Millisecond

// idealTime is how long an ideal sender needs to deliver the scenario's
// messages: the integral of the receiver's capacity over time until it
// reaches N (issue 11). The capacity is the rate cap (R per window of
// the schedule in force, as a flow: N/R for a steady receiver, as the
// bench's ideal), bounded by the session cap times what one session
// carries (a transaction is four round trips: MAIL, RCPT, DATA, the dot)
// and by the mailboxes' own caps; it is nothing during an outage.
// Messages count from their arrival. Under greylisting every recipient
// is tried as it arrives (outages permitting; the first tries are taken
// as free, since a sender may spend a window's whole rate at its start)
// and accepted no sooner than its window after that. The penalty box
// costs an ideal sender nothing: it never goes over a limit. A sender
// that spends each rate window at its start could beat the flow by up
// to one window.
func idealTime(sc Scenario, m *fakemx.Model, lat time.Duration) time.Duration {
	o := sc.Receiver
	window := o.Window
	if window <= 0 {
		window = time.Second
	}
	perSession := math.Inf(1)
	if lat > 0 {
		perSession = 1 / (4 * lat.Seconds())
	}
	dt := idealStep.Seconds()
	n := float64(sc.N)
	grey := int(o.Greylist / idealStep)
	var tried []float64 // cumulative first attempts, per step (greylisting only)
	var served, attempted float64
	for step := 0; step < int(48*time.Hour/idealStep); step++ {
		t := time.Duration(step) * idealStep
		at := sc.Lead + t // the receiver's own time
		capacity := 0.0
		if !m.Down(at) {
			capacity = flow(sc, m, at, window, perSession) * dt
		}
		arrived := n
		if sc.Arrive > 0 {
			// Message i arrives at i/N of the span: the first at once.
			arrived = min(n, math.Floor(n*float64(t)/float64(sc.Arrive))+1)
		}
		if o.Greylist <= 0 {
			served = min(arrived, served+capacity)
		} else {
			if !m.Down(at) {
				attempted = arrived
			}
			tried = append(tried, attempted)
			eligible := 0.0
			if step >= grey {
				eligible = tried[step-grey]
			}
			served = min(max(eligible, served), served+capacity)
		}
		if served >= n-1e-9 {
			return t + idealStep
		}
	}
	return 48 * time.Hour
}

// flow is the receiver's capacity at at of its own time, in messages
// per second: R per window, K sessions of perSession each, each
// mailbox's cap.
func flow(sc Scenario, m *fakemx.Model, at, window time.Duration, perSession float64) float64 {
	o := sc.Receiver
	k, r := m.LimitsAt(at)
	c := math.Inf(1)
	if r > 0 {
		c = float64(r) / window.Seconds()
	}
	if k > 0 {
		c = min(c, float64(k)*perSession)
	}
	if sc.Mailboxes > 0 && o.MailboxRate > 0 {
		mw := o.MailboxWindow
		if mw <= 0 {
			mw = window
		}
		c = min(c, float64(sc.Mailboxes*o.MailboxRate)/mw.Seconds())
	}
	if math.IsInf(c, 1) {
		c = 1e6
	}
	return c
}
