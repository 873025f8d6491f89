package fakemx

import "strings"

// deliver records a message accepted at end of DATA and returns its
// sequence number (used in the "queued as" text).
func (s *Server) deliver(rcpts []string, res dataResult, keep bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.st.Delivered++
	s.st.DeliveredRcpts += len(rcpts)
	if s.st.FirstDelivery.IsZero() {
		s.st.FirstDelivery = now
	}
	s.st.LastDelivery = now
	if res.bare {
		s.st.BareLineEndings++
	}
	if res.messageID == "" {
		s.st.NoMessageID++
	} else {
		if s.ids[res.messageID] > 0 {
			s.st.Duplicates++
		}
		s.ids[res.messageID]++
	}
	for _, r := range rcpts {
		key := strings.ToLower(r)
		rs := s.st.Recipients[key]
		if rs.Delivered.IsZero() {
			rs.Delivered = now
		}
		rs.Deliveries++
		s.st.Recipients[key] = rs
	}
	if keep {
		s.bodies = append(s.bodies, res.raw)
	}
	return s.st.Delivered
}
