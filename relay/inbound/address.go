package inbound

import "unicode/utf8"

// Envelope addresses are parsed by package mailbox, on the raw command
// line (path.go).

// isASCII reports whether s is pure US-ASCII (RFC 6531 §3.4: anything
// else needs the SMTPUTF8 parameter).
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
