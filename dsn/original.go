package dsn

import (
	"bytes"
)

// originalHeaders returns the header section of the original message
// with CRLF line endings, for the text/rfc822-headers part (RFC 6522
// §4). Returning only the headers keeps DSNs small and avoids reflecting
// a large body back at the sender. Bare LF and CR become CRLF and space,
// and any line over 998 octets is folded.
func originalHeaders(msg []byte) []byte {
	var out bytes.Buffer
	for len(msg) > 0 {
		line := msg
		rest := []byte(nil)
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, rest = msg[:i], msg[i+1:]
		}
		msg = rest
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(bytes.TrimSpace(line)) == 0 {
			break // the empty line that ends the header section
		}
		line = bytes.Map(func(r rune) rune {
			if r == '\r' || r == 0 {
				return ' '
			}
			return r
		}, line)
		// Fold an over-long line: each continuation starts with a space.
		for lim := maxLine; ; lim = maxLine - 1 {
			if len(line) <= lim {
				out.Write(line)
				out.WriteString("\r\n")
				break
			}
			out.Write(line[:lim])
			out.WriteString("\r\n ")
			line = line[lim:]
		}
	}
	return out.Bytes()
}
