package dsn

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxLine is the hard limit of RFC 5322 §2.1.1 (998 octets plus CRLF);
// foldAt is the recommended 78.
const (
	maxLine = 998
	foldAt  = 78
)

// clean strips CR, LF and the other control characters from a value so
// that it cannot end a header line and start another.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// ascii is clean plus "?" for every non-ASCII byte: the fields of
// message/delivery-status are US-ASCII (RFC 3464 §2.1).
func ascii(s string) string {
	b := []byte(clean(s))
	for i, c := range b {
		if c >= 0x80 {
			b[i] = '?'
		}
	}
	return string(b)
}

// addrField renders an address for Final-Recipient: "rfc822; addr" when
// it is ASCII, else the "utf-8" type of RFC 6533 §3 with every character
// outside QCHAR written as \x{HEX}, which keeps it 7-bit and lossless.
func addrField(addr string) string {
	addr = strings.TrimSpace(clean(addr))
	if isASCII([]byte(addr)) {
		return "rfc822; " + addr
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(addr, "\uFFFD") {
		if r >= 0x21 && r <= 0x7e && r != '+' && r != '=' && r != '\\' {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, `\x{%X}`, r)
		}
	}
	return "utf-8; " + b.String()
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// writeField writes "Name: value" folded at white space near 78 octets
// (RFC 5322 §2.2.3); a word too long for one line is split hard so that
// no line ever exceeds 998 octets.
func writeField(b *bytes.Buffer, name, value string) {
	line := name + ": "
	words := strings.Fields(clean(value))
	first := true
	for _, w := range words {
		switch {
		case first:
			first = false
		case len(line)+1+len(w) > foldAt:
			b.WriteString(line + "\r\n")
			line = " "
		default:
			line += " "
		}
		for len(line)+len(w) > maxLine {
			n := maxLine - len(line)
			b.WriteString(line + w[:n] + "\r\n")
			line, w = " ", w[n:]
		}
		line += w
	}
	b.WriteString(line + "\r\n")
}
