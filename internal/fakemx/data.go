package fakemx

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
)

// maxHeader bounds the bytes kept to find the Message-ID when bodies are
// not kept, so a huge header cannot grow the server without bound.
const maxHeader = 256 << 10

// dataResult is what readData learned from one DATA upload.
type dataResult struct {
	raw       []byte // whole body when keep, else the header (capped)
	messageID string
	bare      bool // a lone CR or LF was seen
}

// readData reads a DATA body up to the terminating "." line, undoing dot
// stuffing (RFC 5321 §4.5.2). Only CRLF "." CRLF ends the body (§4.1.1.4):
// a bare-LF ".\n" is content, and is reported as a bare line ending, so a
// test can see a relay that would let SMTP smuggling through. Line ends are
// otherwise kept as sent.
func readData(r *bufio.Reader, keep bool) (dataResult, error) {
	var res dataResult
	var buf bytes.Buffer
	atStart, inHeader := true, true
	prevCR := false
	for {
		frag, err := r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return res, fmt.Errorf("reading DATA: %w", err)
		}
		if atStart && len(frag) > 0 && frag[0] == '.' {
			if bytes.Equal(frag, []byte(".\r\n")) {
				break
			}
			frag = frag[1:]
		}
		res.bare = res.bare || hasBareEOL(frag, prevCR)
		if len(frag) > 0 {
			prevCR = frag[len(frag)-1] == '\r'
		}
		if atStart && inHeader && (bytes.Equal(frag, []byte("\r\n")) || bytes.Equal(frag, []byte("\n"))) {
			inHeader = false
		}
		if keep || (inHeader && buf.Len() < maxHeader) {
			buf.Write(frag)
		}
		// A line ends only with CRLF (RFC 5321 §2.3.8): after a bare LF
		// the next byte is not at the start of a line, so "\n.\n" stays
		// content with its dot, as a smuggling test expects to see it.
		atStart = err == nil && bytes.HasSuffix(frag, []byte("\r\n"))
	}
	res.raw = buf.Bytes()
	if keep {
		res.raw = bytes.Clone(res.raw)
	}
	res.messageID = messageID(buf.Bytes())
	return res, nil
}

// hasBareEOL reports a CR not followed by LF or an LF not preceded by CR.
// prevCR says whether the previous fragment ended in CR.
func hasBareEOL(b []byte, prevCR bool) bool {
	if prevCR && len(b) > 0 && b[0] != '\n' {
		return true
	}
	for i, c := range b {
		switch c {
		case '\n':
			if (i == 0 && !prevCR) || (i > 0 && b[i-1] != '\r') {
				return true
			}
		case '\r':
			if i+1 < len(b) && b[i+1] != '\n' {
				return true
			}
		}
	}
	return false
}

// messageID returns the value of the first Message-ID header field of a
// message (RFC 5322 §3.6.4), unfolded and trimmed, or "" if there is none
// before the end of the header.
func messageID(msg []byte) string {
	for len(msg) > 0 {
		line, rest, _ := bytes.Cut(msg, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			return "" // end of header (RFC 5322 §2.1)
		}
		msg = rest
		name, val, ok := bytes.Cut(line, []byte(":"))
		if !ok || !bytes.EqualFold(bytes.TrimRight(name, " \t"), []byte("Message-ID")) {
			continue
		}
		v := append([]byte(nil), val...)
		// Unfold continuation lines (RFC 5322 §2.2.3).
		for len(msg) > 0 && (msg[0] == ' ' || msg[0] == '\t') {
			cont, r2, _ := bytes.Cut(msg, []byte("\n"))
			v = append(v, bytes.TrimSuffix(cont, []byte("\r"))...)
			msg = r2
		}
		return string(bytes.TrimSpace(v))
	}
	return ""
}
