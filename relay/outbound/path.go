package outbound

import "sluice/mailbox"

// formatPath writes a stored envelope address as the path of MAIL FROM or
// RCPT TO: parsed again and printed in its canonical form, so that a local
// part that is not a Dot-string goes out quoted (RFC 5321 §4.1.2) however
// it was stored (a legacy "first..last" becomes "\"first..last\"", as
// Postfix's smtp_quote_rfc821_envelope does). "" is the null reverse path.
// An address that does not parse is refused (false) and never reaches the
// wire: it could carry CR, LF or a '>' that ends the path early.
func formatPath(addr string) (string, bool) {
	if addr == "" {
		return "<>", true
	}
	m, err := mailbox.Parse(addr)
	if err != nil {
		return "", false
	}
	return "<" + m.String() + ">", true
}
