package policy

import (
	"fmt"
	"time"
)

// senderAlarm is the sender-wide alarm: many destinations throttling at
// once points at the sender (its IP, its content, its authentication),
// not at the receivers (shared/replies.md).
type senderAlarm struct {
	active bool
	reason string
	since  time.Time
}

// alarmCondition counts destinations attempted and throttling within the
// window. Caller holds p.mu.
func (p *Policy) alarmCondition(now time.Time) (bool, string) {
	attempted, throttling := 0, 0
	for _, d := range p.dests.All() {
		if !d.lastAttempt.IsZero() && now.Sub(d.lastAttempt) <= p.o.AlarmWindow {
			attempted++
			if !d.lastThrottl.IsZero() && now.Sub(d.lastThrottl) <= p.o.AlarmWindow {
				throttling++
			}
		}
	}
	if throttling < p.o.AlarmMinDestinations || attempted == 0 ||
		float64(throttling) < p.o.AlarmShare*float64(attempted) {
		return false, ""
	}
	return true, fmt.Sprintf("%d of %d destinations attempted in the last %v are throttling: check the sender's IP reputation, authentication and content",
		throttling, attempted, p.o.AlarmWindow)
}

// checkAlarm raises the alarm when the condition starts to hold and
// returns its reason then (only then). Caller holds p.mu.
func (p *Policy) checkAlarm(now time.Time) string {
	on, why := p.alarmCondition(now)
	if !on {
		p.alarm = senderAlarm{}
		return ""
	}
	if p.alarm.active {
		p.alarm.reason = why
		return ""
	}
	p.alarm = senderAlarm{active: true, reason: why, since: now}
	return why
}

// Alarm reports the sender-wide alarm as of now.
func (p *Policy) Alarm() (active bool, reason string, since time.Time) {
	now := p.o.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if on, why := p.alarmCondition(now); !on {
		p.alarm = senderAlarm{}
	} else if !p.alarm.active {
		p.alarm = senderAlarm{active: true, reason: why, since: now}
	} else {
		p.alarm.reason = why
	}
	return p.alarm.active, p.alarm.reason, p.alarm.since
}
