package policy

// slowStart is TCP's slow start applied to sessions (RFC 5681 §3.1): a
// destination with no history starts with InitialConcurrency sessions and
// gains one per success, so the limit doubles every round trip, until the
// maximum or the first refusal. A receiver that caps sessions then refuses
// one extra session, not the maximum minus its cap all at once.
type slowStart struct {
	on bool
}

// grow is the growth of one success: conc+1 while below max. Reaching max
// ends slow start (later growth is additive).
func (s *slowStart) grow(conc, max int) int {
	if !s.on {
		return conc
	}
	if conc < max {
		return conc + 1
	}
	s.on = false
	return conc
}

// end stops slow start (the first refusal: from now on AIMD).
func (s *slowStart) end() { s.on = false }
