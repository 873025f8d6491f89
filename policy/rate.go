package policy

import (
	"time"

	"golang.org/x/time/rate"
)

// rateAIMD is the message rate of a destination: the current rate and
// its token bucket, the recent successes it is measured by, and the
// ceiling that gates its growth.
type rateAIMD struct {
	rate    rate.Limit // current rate, 0 = unlimited
	limiter *rate.Limiter
	ceil    rateCeiling
	oks     successRing
}

// set installs a new current rate (0 = unlimited). The burst is a tenth
// of a second's worth, at least 1: waiting mail is paced, never released
// in one storm (design §4, "no storms").
func (a *rateAIMD) set(r rate.Limit, now time.Time) {
	a.rate = r
	if r <= 0 {
		a.limiter = nil
		return
	}
	burst := max(int(float64(r)/10), 1)
	if a.limiter == nil {
		a.limiter = rate.NewLimiter(r, burst)
		return
	}
	a.limiter.SetLimitAt(now, r)
	a.limiter.SetBurstAt(now, burst)
}

// cut is the multiplicative decrease after a rate refusal; ok = false
// when nothing is known about the rate (see rateCeiling.refused).
func (a *rateAIMD) cut(hard bool, now time.Time, o *Options) bool {
	next, ok := a.ceil.refused(a.rate, a.oks.rate(now), hard, now, o)
	if ok {
		a.set(next, now)
	}
	return ok
}

// grow is one additive step, as far as the ceiling allows; it reports a
// change.
func (a *rateAIMD) grow(maxRate rate.Limit, now time.Time, o *Options) bool {
	if a.rate <= 0 {
		return false
	}
	next := a.ceil.grow(a.rate, maxRate, now, o)
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
	t := a.limiter.TokensAt(now)
	if t < 1 {
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
	r := a.limiter.ReserveN(now, 1)
	if !r.OK() {
		return fallback
	}
	delay := r.DelayFrom(now)
	if delay > 0 {
		r.CancelAt(now)
	}
	return delay
}

// successRing holds the times of recent successes, for the delivered-pace
// estimate (enough for a few hundred messages per second over 1 s).
type successRing struct {
	t    [256]time.Time
	next int
}

func (s *successRing) add(now time.Time) {
	s.t[s.next%len(s.t)] = now
	s.next++
}

// rate estimates successes per second: over the last second when busy,
// else over the last 10 s.
func (s *successRing) rate(now time.Time) rate.Limit {
	// Prefer the last second when it holds enough successes: at a
	// refusal that is the pace the receiver just saw, undiluted by an
	// earlier pause.
	var recent int
	for _, t := range s.t {
		if !t.IsZero() && !t.After(now) && now.Sub(t) <= time.Second {
			recent++
		}
	}
	if recent >= 20 {
		return rate.Limit(recent)
	}
	var n int
	oldest := now
	for _, t := range s.t {
		if t.IsZero() || now.Sub(t) > 10*time.Second || t.After(now) {
			continue
		}
		n++
		if t.Before(oldest) {
			oldest = t
		}
	}
	if n == 0 {
		return 0
	}
	span := max(now.Sub(oldest), time.Second)
	return rate.Limit(float64(n) / span.Seconds())
}
