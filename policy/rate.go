package policy

import (
	"time"

	"golang.org/x/time/rate"
)

// rateAIMD is the message rate of a destination: the current rate and
// its token bucket, the recent successes it is measured by, and the
// ceiling that decides it.
type rateAIMD struct {
	rate    rate.Limit // current rate, 0 = unlimited
	limiter *rate.Limiter
	ceil    rateCeiling
	oks     successRing
	quiet   time.Time // no message before: after a rate refusal the receiver's window refills
	waited  time.Time // a message last waited for a token (the rate holds mail back)
}

// bindingFor is how recently a message must have waited for a token for
// the rate to count as what holds mail back.
const bindingFor = time.Second

// set installs a new current rate (0 = unlimited). The burst is a
// twentieth of a second's worth, at least 1: waiting mail is paced, never
// released in one storm (design §4, "no storms"), and a receiver that
// counts per second sees at most the rate and 5 % (the learned rate's
// margin, see learnMargin).
func (a *rateAIMD) set(r rate.Limit, now time.Time) {
	a.rate = r
	if r <= 0 {
		a.limiter = nil
		return
	}
	burst := Burst(r)
	if a.limiter == nil {
		a.limiter = rate.NewLimiter(r, burst)
		return
	}
	a.limiter.SetLimitAt(now, r)
	a.limiter.SetBurstAt(now, burst)
}

// Burst is the bucket size of rate r (> 0): a twentieth of a second's
// worth, at least 1 (see rateAIMD.set). A cluster's shared bucket and its
// fallback share use the same (package cluster).
func Burst(r rate.Limit) int { return max(int(float64(r)/20), 1) }

// cut is the decrease after a rate refusal, to what the ceiling learned;
// ok = false when nothing is known about the rate and floor is false
// (see rateCeiling.refused). No message goes before quiet: the sessions still
// open would only meet the receiver's full window.
func (a *rateAIMD) cut(hard, floor bool, pace, longPace rate.Limit, share float64, quiet, now time.Time, o *Options) bool {
	a.ceil.share = share
	next, ok := a.ceil.refused(a.rate, pace, longPace, a.oks.next, a.quiet, hard, floor, now, o)
	a.ceil.share = 0
	if ok {
		a.set(next, now)
		if quiet.After(a.quiet) {
			a.quiet = quiet
		}
	}
	return ok
}

// afterQuiet reports whether the quiet after the last rate cut is over
// at now: a message refused now was sent at the rate that cut set.
func (a *rateAIMD) afterQuiet(now time.Time) bool {
	return !a.quiet.IsZero() && !now.Before(a.quiet)
}

// grow follows the ceiling after a success; it reports a change.
func (a *rateAIMD) grow(maxRate rate.Limit, now time.Time) bool {
	if a.rate <= 0 {
		return false
	}
	next := a.ceil.grow(a.rate, maxRate, now.Sub(a.waited) <= bindingFor, a.oks.next, now)
	if next == a.rate {
		return false
	}
	a.set(next, now)
	return true
}

// clamp brings the rate within maxRate (0 = no cap).
func (a *rateAIMD) clamp(maxRate rate.Limit, now time.Time) {
	if maxRate > 0 && (a.rate <= 0 || a.rate > maxRate) {
		a.set(maxRate, now)
	}
}

// tokens is how many messages may go now, and when the next token comes
// when none may; ok = false when the rate is unlimited.
func (a *rateAIMD) tokens(now time.Time) (n int, next time.Time, ok bool) {
	if a.limiter == nil {
		return 0, time.Time{}, false
	}
	if now.Before(a.quiet) {
		return 0, a.quiet, true
	}
	t := a.limiter.TokensAt(now)
	if t < 1 {
		a.waited = now
		wait := time.Duration((1 - t) / float64(a.limiter.Limit()) * float64(time.Second))
		return 0, now.Add(max(wait, time.Millisecond)), true
	}
	return int(t), time.Time{}, true
}

// reserve takes one token: 0 = send now (taken), > 0 = not taken, wait
// that long. fallback is the wait when the bucket cannot answer.
func (a *rateAIMD) reserve(now time.Time, fallback time.Duration) time.Duration {
	if a.limiter == nil {
		return 0
	}
	if now.Before(a.quiet) {
		a.waited = now
		return a.quiet.Sub(now)
	}
	r := a.limiter.ReserveN(now, 1)
	if !r.OK() {
		return fallback
	}
	delay := r.DelayFrom(now)
	if delay > 0 {
		a.waited = now
		r.CancelAt(now)
	}
	return delay
}

// successRing counts recent successes in buckets of paceBucket over the
// last paceSpan, for the delivered-pace estimate: 1.6 KB whatever the
// rate (a ring of times would need one per message of the last second).
type successRing struct {
	b    [paceBuckets]paceCount
	next int // successes ever counted (the spacing of refusals counts from it)
}

type paceCount struct {
	slot int64 // the bucket's start, in paceBucket units since the epoch
	n    int64
}

const (
	paceBucket  = 100 * time.Millisecond
	paceSpan    = 10 * time.Second
	paceBuckets = int(paceSpan / paceBucket)
)

func (s *successRing) add(now time.Time) {
	slot := now.UnixNano() / int64(paceBucket)
	b := &s.b[int(slot%int64(paceBuckets))]
	if b.slot != slot {
		*b = paceCount{slot: slot}
	}
	b.n++
	s.next++
}

// rate estimates successes per second: over the last second when busy
// (at least 20), else over the last 10 s, from the oldest success in it.
func (s *successRing) rate(now time.Time) rate.Limit { return s.pace(now, true) }

// longRate is successes per second over the last 10 s, from the oldest
// success in it: the pace before a change of the last second or two.
func (s *successRing) longRate(now time.Time) rate.Limit { return s.pace(now, false) }

func (s *successRing) pace(now time.Time, preferRecent bool) rate.Limit {
	// Prefer the last second when it holds enough successes: at a
	// refusal that is the pace the receiver just saw, undiluted by an
	// earlier pause.
	cur := now.UnixNano() / int64(paceBucket)
	perSec := int64(time.Second / paceBucket)
	var recent, n int64
	oldest := cur + 1
	for _, b := range s.b {
		if b.n == 0 || b.slot > cur || b.slot <= cur-int64(paceBuckets) {
			continue
		}
		n += b.n
		oldest = min(oldest, b.slot)
		if b.slot > cur-perSec {
			recent += b.n
		}
	}
	if preferRecent && recent >= 20 {
		return rate.Limit(recent)
	}
	if n == 0 {
		return 0
	}
	span := max(now.Sub(time.Unix(0, oldest*int64(paceBucket))), time.Second)
	return rate.Limit(float64(n) / span.Seconds())
}
