package sim

import (
	"math"
	"time"

	"sluice/internal/fakemx"
)

// idealStep is the resolution of the ideal sender's fluid model.
const idealStep = 10 * time.Millisecond

// idealTime is how long an ideal sender needs to deliver the scenario's
// messages: the integral of the receiver's capacity over time until it
// reaches N. The capacity at a time is the rate cap (R per window of the
// schedule in force), bounded by the session cap times what one session
// carries (a transaction is four round trips: MAIL, RCPT, DATA, the
// dot), and by the mailboxes' own caps; it is nothing during an outage.
// Messages count from their arrival. Under greylisting every recipient
// is tried once (a MAIL the rate counts too) and accepted no sooner
// than the window after that: the ideal sender tries each as it
// arrives and comes back exactly when the window ends. The penalty box
// costs an ideal sender nothing: it never goes over a limit.
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
		capacity := capacityAt(sc, m, sc.Lead+t, window, perSession) * dt
		arrived := n
		if sc.Arrive > 0 {
			// Message i arrives at i/N of the span: the first at once.
			arrived = min(n, math.Floor(n*float64(t)/float64(sc.Arrive))+1)
		}
		if o.Greylist <= 0 {
			served = min(arrived, served+capacity)
		} else {
			// Retries whose window has passed first, then first tries.
			eligible := 0.0
			if step >= grey && step-grey < len(tried) {
				eligible = tried[step-grey]
			}
			take := min(capacity, max(eligible-served, 0))
			served += take
			first := min(capacity-take, arrived-attempted)
			attempted += first
			tried = append(tried, attempted)
		}
		if served >= n-1e-9 {
			return t + idealStep
		}
	}
	return 48 * time.Hour
}

// capacityAt is the receiver's capacity in messages per second at t of
// its own time.
func capacityAt(sc Scenario, m *fakemx.Model, t, window time.Duration, perSession float64) float64 {
	o := sc.Receiver
	if m.Down(t) {
		return 0
	}
	k, r := m.LimitsAt(t)
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
