package outbound

import "sluice/reply"

// requireTLS is the refusal of a REQUIRETLS message (RFC 8689 §4.2.1)
// over this session, or nil when it may go: the session must run over
// TLS whose peer passed verification, and the next hop must offer
// REQUIRETLS (after STARTTLS: the EHLO reply that counts is the one
// over TLS). The refusals are permanent and bounce the message with the
// RFC's codes (§5): 5.7.10 when TLS is missing or unverified, 5.7.30
// when the next hop does not offer REQUIRETLS. They are never a reason
// to try in plaintext or to drop the requirement.
func (s *Session) requireTLS() *reply.Reply {
	if !s.tls || !s.verified {
		return &reply.Reply{Stage: reply.StageMail, Code: 550, Enhanced: "5.7.10",
			Text: "REQUIRETLS: the TLS session with " + s.hop.Host + " is not verified (neither DANE nor MTA-STS nor a verified certificate)"}
	}
	if _, ok := s.ext["REQUIRETLS"]; !ok {
		return &reply.Reply{Stage: reply.StageMail, Code: 550, Enhanced: "5.7.30",
			Text: "REQUIRETLS support required: next hop " + s.hop.Host + " does not offer it"}
	}
	return nil
}
