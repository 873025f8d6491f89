package dsn

import (
	"bufio"
	"bytes"
	"io"
)

// ReturnLimit is the largest original that a DSN returns whole, as a
// message/rfc822 part; a larger one is returned as its header section
// only (text/rfc822-headers, RFC 6522 §4). Postfix's bounce_size_limit has
// the same default. Returning a 25 MB message to its sender would double
// the traffic of every bounce and hold the message in memory to build it.
const ReturnLimit = 50000

// maxHeaderRead bounds what ReadOriginal keeps of the header section of
// a large original; the inbound side refuses larger header sections.
const maxHeaderRead = 1 << 20

// ReadOriginal reads from r, an original message of size bytes, what
// Build needs of it: all of it when size is at most ReturnLimit, else its
// header section up to the empty line (at most 1 MiB). It never reads a
// large body.
func ReadOriginal(r io.Reader, size int64) ([]byte, error) {
	if size <= ReturnLimit {
		return io.ReadAll(io.LimitReader(r, ReturnLimit+1))
	}
	br := bufio.NewReader(io.LimitReader(r, maxHeaderRead))
	var out []byte
	cont := false // line is the rest of a line longer than the buffer
	for {
		line, err := br.ReadSlice('\n')
		out = append(out, line...)
		if err == nil && !cont && len(bytes.TrimRight(line, "\r\n")) == 0 {
			return out, nil // the empty line that ends the header section
		}
		cont = err == bufio.ErrBufferFull
		switch err {
		case nil, bufio.ErrBufferFull:
		case io.EOF:
			return out, nil
		default:
			return out, err
		}
	}
}

// returnedOriginal picks the third part of the DSN: the whole original
// when it is complete, small and already SMTP-safe (CRLF line endings, no
// line over 998 octets), else its header section.
func returnedOriginal(msg []byte, size int64) ([]byte, bool) {
	if size == 0 {
		size = int64(len(msg))
	}
	if size == int64(len(msg)) && size > 0 && size <= ReturnLimit && wireSafe(msg) {
		return msg, true
	}
	return originalHeaders(msg), false
}

// wireSafe reports whether msg has only CRLF line endings, ends with one,
// and has no line over 998 octets (RFC 5322 §2.1.1), so that it can be
// returned unchanged inside the DSN.
func wireSafe(msg []byte) bool {
	for len(msg) > 0 {
		i := bytes.IndexByte(msg, '\n')
		if i <= 0 || msg[i-1] != '\r' || i-1 > maxLine || bytes.IndexByte(msg[:i-1], '\r') >= 0 {
			return false
		}
		msg = msg[i+1:]
	}
	return true
}

// originalHeaders returns the header section of the original message
// with CRLF line endings, for the text/rfc822-headers part (RFC 6522
// §4). Bare LF and CR become CRLF and space, and any line over 998 octets
// is folded.
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
