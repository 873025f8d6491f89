package outbound

import "sluice/reply"

// requireTLS is the refusal of a REQUIRETLS message (RFC 8689 §4.2.1)
// over this session, or nil when it may go. The session must run over
// TLS whose peer passed verification, and the next hop must be one
// whose identity an attacker could not have chosen: found through DANE
// (a secure MX RRset and TLSA records) or an MTA-STS policy (item 1 of
// §4.2.1), or named by the operator (a route or the smarthost). A
// certificate valid for an MX host name taken from insecure DNS proves
// only that the attacker who forged the MX record owns a certificate.
// And the next hop must offer REQUIRETLS (after STARTTLS: the EHLO
// reply that counts is the one over TLS). The refusals are permanent
// and bounce the message with the RFC's codes (§5): 5.7.10 when TLS is
// missing or not verified that way, 5.7.30 when the next hop does not
// offer REQUIRETLS. They are never a reason to try in plaintext or to
// drop the requirement.
func (s *Session) requireTLS() *reply.Reply {
	trusted := s.req.PolicyType == "tlsa" || s.req.PolicyType == "sts" || s.hop.Via != ""
	if !s.tls || !s.verified || !trusted {
		return &reply.Reply{Stage: reply.StageMail, Code: 550, Enhanced: "5.7.10",
			Text: "REQUIRETLS: the TLS session with " + s.hop.Host + " is not verified by DANE or MTA-STS"}
	}
	if _, ok := s.ext["REQUIRETLS"]; !ok {
		return &reply.Reply{Stage: reply.StageMail, Code: 550, Enhanced: "5.7.30",
			Text: "REQUIRETLS support required: next hop " + s.hop.Host + " does not offer it"}
	}
	return nil
}
