package inbound

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"sluice/mailbox"
)

// heloName returns the name a HELO/EHLO line gives, the way go-smtp's
// parseCmd and parseHelloArgument will read it (up to the first space),
// and whether the line has an argument at all.
func heloName(line []byte) (string, bool) {
	s := strings.TrimRight(string(line), "\r\n")
	if len(s) <= 5 {
		return "", false
	}
	arg := strings.TrimSpace(s[5:])
	if i := strings.IndexByte(arg, ' '); i >= 0 {
		arg = arg[:i]
	}
	return arg, arg != ""
}

// heloNameOK reports whether name may stand in a HELO/EHLO command. RFC
// 5321 §4.1.1.1 asks for a Domain or an address literal (§4.1.3); we are
// as tolerant as real clients need (an underscore, a bare IP address, a
// single label such as "localhost", U-labels) but refuse anything that
// could not be either: control characters, invalid UTF-8, quotes, angle
// brackets, spaces. The name is stored with the message and printed by
// `queue show` and in our Received: header, so it must be inert text.
func heloNameOK(name string) bool {
	if name == "" || len(name) > mailbox.MaxDomainLen {
		return false
	}
	if name[0] == '[' {
		// Address-literal: "[" 1*dcontent "]", dcontent = %d33-90 /
		// %d94-126 (RFC 5321 §4.1.3, General-address-literal).
		if len(name) < 3 || name[len(name)-1] != ']' {
			return false
		}
		for i := 1; i < len(name)-1; i++ {
			if c := name[i]; c < 33 || c > 126 || c == '[' || c == ']' || c == '\\' {
				return false
			}
		}
		return true
	}
	if !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
		case r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Mc, r)):
			// A U-label (RFC 6531 §3.3 allows them in EHLO).
		default:
			return false
		}
	}
	return true
}

// clipForLog bounds a client string in a log line (slog quotes control
// characters itself).
func clipForLog(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
