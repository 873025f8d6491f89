// Package escape makes untrusted text safe to print on a terminal.
//
// Every string sluice prints that came from a client or a remote server (a
// HELO name, an envelope address, a reply text, a user name, a reason) may
// carry terminal control sequences: ESC [ 2 J clears the screen, OSC sets
// the window title or writes to the clipboard, a bidi override reorders
// what the operator reads. Text writes those bytes as Go-style escapes and
// leaves printable text, UTF-8 included, as it is, so an ordinary address
// or reply prints unchanged. It is safe for concurrent use.
package escape

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Text returns s with every byte that is not printable written as an
// escape: \t, \n, \r and \xNN for ASCII control characters and DEL, \xNN
// for each byte of invalid UTF-8, \uNNNN or \UNNNNNNNN for a rune that
// strconv.IsPrint refuses (C1 controls such as U+009B CSI, format
// characters such as U+202E, line and paragraph separators, non-ASCII
// spaces). A backslash is left alone: the output is for reading, not for
// unquoting, and every address with a quoted-pair would otherwise double.
func Text(s string) string {
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] < 0x7f {
		i++
	}
	if i == len(s) {
		return s // the common case: printable ASCII, no allocation
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			b.WriteByte(c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			writeASCIIControl(&b, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			writeHexByte(&b, c)
		case strconv.IsPrint(r):
			b.WriteString(s[i : i+size])
		case r <= 0xFFFF:
			b.WriteString(`\u`)
			writeHex(&b, uint32(r), 4)
		default:
			b.WriteString(`\U`)
			writeHex(&b, uint32(r), 8)
		}
		i += size
	}
	return b.String()
}

// Lines escapes each line of a multi-line text and keeps its line breaks.
func Lines(s string) string {
	if !strings.Contains(s, "\n") {
		return Text(s)
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Text(l)
	}
	return strings.Join(lines, "\n")
}

// JSON rewrites the runes that encoding/json leaves raw but a terminal
// would act on (DEL and the non-printable runes above ASCII, see Text) as
// JSON \u escapes, so the document decodes to the same values. encoding/json
// already escapes the ASCII control characters and replaces invalid UTF-8.
// Outside strings a JSON document is printable ASCII, so every such rune
// is inside a string, where \u is valid.
func JSON(doc []byte) []byte {
	clean := true
	for _, c := range doc {
		if c == 0x7f || c >= utf8.RuneSelf {
			clean = false
			break
		}
	}
	if clean {
		return doc
	}
	out := make([]byte, 0, len(doc)+16)
	for i := 0; i < len(doc); {
		c := doc[i]
		if c < utf8.RuneSelf && c != 0x7f {
			out = append(out, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(doc[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out = append(out, `\ufffd`...)
		case c != 0x7f && strconv.IsPrint(r):
			out = append(out, doc[i:i+size]...)
		case r > 0xFFFF:
			r -= 0x10000
			out = appendU(out, 0xD800+(r>>10))
			out = appendU(out, 0xDC00+(r&0x3FF))
		default:
			out = appendU(out, r)
		}
		i += size
	}
	return out
}

func appendU(out []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	return append(out, '\\', 'u', hex[r>>12&0xF], hex[r>>8&0xF], hex[r>>4&0xF], hex[r&0xF])
}

func writeASCIIControl(b *strings.Builder, c byte) {
	switch c {
	case '\t':
		b.WriteString(`\t`)
	case '\n':
		b.WriteString(`\n`)
	case '\r':
		b.WriteString(`\r`)
	default:
		writeHexByte(b, c)
	}
}

func writeHexByte(b *strings.Builder, c byte) {
	b.WriteString(`\x`)
	writeHex(b, uint32(c), 2)
}

func writeHex(b *strings.Builder, v uint32, digits int) {
	const hex = "0123456789abcdef"
	for shift := (digits - 1) * 4; shift >= 0; shift -= 4 {
		b.WriteByte(hex[v>>uint(shift)&0xF])
	}
}
