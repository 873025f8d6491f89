package auth

import "io"

// endHeader returns a reader that yields msg and, when msg has no empty
// line ending its header section (a headers-only message, which RFC 5322
// §3.5 allows: the body is optional), adds the CRLF that ends it, plus the
// CRLF of an unterminated last line. The DKIM code then sees a header
// section followed by an empty body, which is what such a message is:
// RFC 6376 §3.4.3 (simple) canonicalises an empty body to a single CRLF
// and §3.4.4 (relaxed) to nothing, so a signature computed this way
// verifies at any receiver that reads the stored message, which is never
// changed. go-msgauth (v0.7.0, dkim/header.go readHeader) instead fails with
// "failed to read header: EOF" on such messages, when signing and when
// verifying: the message would be deferred with 451 4.3.0 forever.
//
// Lines end in CRLF or, leniently, in a bare LF, as go-msgauth's
// textproto-based reader accepts both.
func endHeader(msg io.Reader) io.Reader {
	return &headerEnder{r: msg}
}

type headerEnder struct {
	r     io.Reader
	col   int  // bytes on the current line so far
	cr    bool // the last byte was a CR
	done  bool // the empty line ending the header section was seen
	tail  []byte
	atEOF bool
}

func (h *headerEnder) Read(p []byte) (int, error) {
	if h.atEOF {
		if len(h.tail) == 0 {
			return 0, io.EOF
		}
		n := copy(p, h.tail)
		h.tail = h.tail[n:]
		return n, nil
	}
	n, err := h.r.Read(p)
	if !h.done {
		h.scan(p[:n])
	}
	if err == io.EOF {
		h.atEOF = true
		if !h.done {
			if h.col > 0 {
				h.tail = append(h.tail, "\r\n"...)
			}
			h.tail = append(h.tail, "\r\n"...)
		}
		if n > 0 || len(h.tail) > 0 {
			return n, nil
		}
	}
	return n, err
}

// scan looks for an empty line: CRLF or LF alone on its line, as
// net/textproto reads it.
func (h *headerEnder) scan(b []byte) {
	for _, c := range b {
		if c == '\n' {
			if h.col == 0 || (h.col == 1 && h.cr) {
				h.done = true
				return
			}
			h.col, h.cr = 0, false
			continue
		}
		h.col++
		h.cr = c == '\r'
	}
}
