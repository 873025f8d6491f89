package fakemx

import (
	"math"
	"strings"
	"time"
)

// The admission decisions below run under s.mu: each one reads and
// updates shared counters in one step, so concurrent sessions never both
// take the last slot.

// limitsAt returns the session and rate caps in force at elapsed time d:
// the last Schedule entry whose At has passed, else the base Options.
func (s *Server) limitsAt(d time.Duration) (maxSessions, rate int) {
	maxSessions, rate = s.o.MaxSessions, s.o.RatePerWindow
	best := time.Duration(-1)
	for _, l := range s.o.Schedule {
		if l.At <= d && l.At >= best {
			best = l.At
			maxSessions, rate = l.MaxSessions, l.RatePerWindow
		}
	}
	return maxSessions, rate
}

// admit decides the greeting of a new connection. It returns the refusal
// to send, or ok=true after counting the session as active.
func (s *Server) admit() (refusal reply, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Connections++
	d := s.now().Sub(s.start)
	for _, w := range s.o.Outages {
		if d >= w.Start && d < w.End {
			s.st.OutageRefusals++
			return s.outage, false
		}
	}
	k, _ := s.limitsAt(d)
	if k > 0 && s.active >= k {
		s.st.SessionRefusals++
		return s.sessions, false
	}
	s.active++
	s.st.Sessions++
	s.st.MaxConcurrent = max(s.st.MaxConcurrent, s.active)
	return reply{}, true
}

func (s *Server) release() {
	s.mu.Lock()
	s.active--
	s.mu.Unlock()
}

// takeRate counts one MAIL FROM against the current fixed window, or
// reports that the window is full.
func (s *Server) takeRate() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.now().Sub(s.start)
	_, r := s.limitsAt(d)
	if idx := int64(d / s.o.Window); idx != s.win {
		s.win, s.inWin = idx, 0
	}
	if r > 0 && s.inWin >= r {
		s.st.RateRefusals++
		return false
	}
	s.inWin++
	return true
}

// noteAttempt records the first RCPT naming rcpt, whatever the reply.
func (s *Server) noteAttempt(rcpt string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(rcpt)
	if rs := s.st.Recipients[key]; rs.FirstAttempt.IsZero() {
		rs.FirstAttempt = s.now()
		s.st.Recipients[key] = rs
	}
}

// greylisted records a RCPT attempt of the triplet and returns the
// greylist reply if the triplet is still inside its window.
func (s *Server) greylisted(ip, from, rcpt string) (reply, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.o.Greylist <= 0 {
		return reply{}, false
	}
	now := s.now()
	key := strings.ToLower(rcpt)
	t := triplet{ip: ip, from: strings.ToLower(from), rcpt: key}
	first, seen := s.first[t]
	if !seen {
		first = now
		s.first[t] = now
	}
	left := s.o.Greylist - now.Sub(first)
	if left <= 0 {
		return reply{}, false
	}
	rs := s.st.Recipients[key]
	rs.GreylistReplies++
	s.st.Recipients[key] = rs
	s.st.GreylistReplies++
	return s.grey.withDelay(int(math.Ceil(left.Seconds()))), true
}

// script returns the reply of the first rule of stage matching any of
// subjects, counting the match against the rule's Times.
func (s *Server) script(stage string, subjects ...string) (scripted, bool) {
	if len(s.rules) == 0 {
		return scripted{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.rules {
		if r.stage != stage || (r.times > 0 && s.hits[i] >= r.times) {
			continue
		}
		if !matchAny(r.match, subjects) {
			continue
		}
		s.hits[i]++
		s.st.ScriptedReplies++
		return r.reply, true
	}
	return scripted{}, false
}

func matchAny(m string, subjects []string) bool {
	if m == "" {
		return true
	}
	for _, sub := range subjects {
		if strings.Contains(strings.ToLower(sub), m) {
			return true
		}
	}
	return false
}
