package inbound

import (
	"strconv"
	"strings"
)

// inWire follows the raw byte stream a client sends, below go-smtp's
// buffered reader, so that we see exactly what was on the wire:
//
//   - go-smtp's dot reader drops the CR of a ".\r" line start, so a lone
//     CR hidden as "\r\n.\r\r\n" never reaches Session.Data; the wire view
//     sees it (RFC 5321 §2.3.8: CR and LF only ever travel as CRLF).
//   - command lines are classified so that the conn can hold back the bytes
//     after DATA until the reply says whether they are data (354) or
//     commands, and can take over STARTTLS itself.
//
// Its DATA states mirror go-smtp's dot reader byte for byte, so both agree
// on where the message ends: only "\r\n.\r\n" ends it, and anything after a
// fake terminator stays data and is never parsed as a command.
type inWire struct {
	mode      inWireMode
	line      []byte // start of the current command line (capped)
	lineLen   int    // full length of the current command line
	chunkLeft int64  // BDAT bytes still to pass through unparsed
	dstate    inDotState
	prevCR    bool
	bare      bool // a lone CR or LF was seen in the current DATA
	lines     int  // command lines seen so far
}

type inWireMode int

const (
	inModeCommand inWireMode = iota
	inModeData
	inModeChunk
)

type inDotState int

// These mirror go-smtp's dataReader states.
const (
	inDotBeginLine inDotState = iota
	inDotDot
	inDotDotCR
	inDotCR
	inDotData
)

// inLineEvent is what a completed command line asks of the conn.
type inLineEvent int

const (
	inEvNone     inLineEvent = iota
	inEvData                 // DATA: hold what follows until the reply is known
	inEvStartTLS             // STARTTLS: handled by the conn, not go-smtp
	inEvHTTP                 // an HTTP request line: answer 5xx and close
	inEvHelo                 // HELO/EHLO: the client introduced itself
	inEvEhlo                 // EHLO specifically
	inEvMail                 // MAIL: the path is parsed by the conn (rewritePath)
	inEvRcpt                 // RCPT: likewise
)

// inLineKeep is how much of a command line we keep to classify it.
const inLineKeep = 128

// feed scans p and returns how many bytes it consumed. It stops right after
// a command line whose event is not inEvNone, returning the event and the
// full length of that line (which may have begun in an earlier feed).
func (w *inWire) feed(p []byte) (n int, ev inLineEvent, lineLen int) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch w.mode {
		case inModeChunk:
			// BDAT chunks are opaque octets (RFC 3030 §2): no dot
			// handling, no line parsing.
			take := int64(len(p) - i)
			if take > w.chunkLeft {
				take = w.chunkLeft
			}
			w.chunkLeft -= take
			i += int(take) - 1
			if w.chunkLeft == 0 {
				w.mode = inModeCommand
			}
		case inModeData:
			w.dataByte(c)
		case inModeCommand:
			w.lineLen++
			if len(w.line) < inLineKeep {
				w.line = append(w.line, c)
			}
			if c != '\n' {
				continue
			}
			l := w.lineLen
			if ev := w.endLine(); ev != inEvNone {
				return i + 1, ev, l
			}
		}
	}
	return len(p), inEvNone, 0
}

// dataByte advances the DATA state by one byte.
func (w *inWire) dataByte(c byte) {
	if c == '\n' && !w.prevCR || c != '\n' && w.prevCR {
		w.bare = true
	}
	w.prevCR = c == '\r'
	switch w.dstate {
	case inDotBeginLine:
		switch c {
		case '.':
			w.dstate = inDotDot
		case '\r':
			w.dstate = inDotCR
		default:
			w.dstate = inDotData
		}
	case inDotDot:
		if c == '\r' {
			w.dstate = inDotDotCR
		} else {
			w.dstate = inDotData
		}
	case inDotDotCR:
		if c == '\n' {
			// "\r\n.\r\n": the end of the message (RFC 5321 §4.1.1.4).
			w.mode = inModeCommand
			w.prevCR = false
			return
		}
		w.dstate = inDotData
	case inDotCR:
		if c == '\n' {
			w.dstate = inDotBeginLine
		} else {
			w.dstate = inDotData
		}
	case inDotData:
		if c == '\r' {
			w.dstate = inDotCR
		}
	}
}

// startData switches to DATA mode after a 354 reply.
func (w *inWire) startData() {
	w.mode = inModeData
	w.dstate = inDotBeginLine
	w.prevCR = false
	w.bare = false
}

// idle reports whether the stream is between commands.
func (w *inWire) idle() bool {
	return w.mode == inModeCommand && w.lineLen == 0
}

// endLine classifies a complete command line the way go-smtp's parseCmd
// will see it.
func (w *inWire) endLine() inLineEvent {
	line := strings.TrimRight(string(w.line), "\r\n")
	full := w.lineLen <= inLineKeep
	w.line = w.line[:0]
	w.lineLen = 0
	w.lines++
	upper := strings.ToUpper(line)
	if w.lines == 1 && inIsHTTPRequestLine(upper) {
		return inEvHTTP
	}
	if strings.HasPrefix(upper, "STARTTLS") {
		return inEvStartTLS
	}
	if len(line) < 4 || len(line) > 4 && line[4] != ' ' {
		return inEvNone
	}
	switch upper[:4] {
	case "DATA":
		return inEvData
	case "EHLO":
		return inEvEhlo
	case "HELO":
		return inEvHelo
	case "MAIL", "RCPT":
		if len(line) > 5 { // go-smtp refuses shorter ones itself
			if upper[:4] == "MAIL" {
				return inEvMail
			}
			return inEvRcpt
		}
	case "BDAT":
		if full {
			if size, ok := inBdatSize(line[4:]); ok && size > 0 {
				w.mode = inModeChunk
				w.chunkLeft = size
			}
		}
	}
	return inEvNone
}

// inBdatSize mirrors go-smtp's handleBdat argument checks: when they pass,
// go-smtp reads the chunk whatever it replies, so we must skip it too.
func inBdatSize(arg string) (int64, bool) {
	args := strings.Fields(arg)
	if len(args) == 0 || len(args) > 2 {
		return 0, false
	}
	if len(args) == 2 && !strings.EqualFold(args[1], "LAST") {
		return 0, false
	}
	size, err := strconv.ParseUint(args[0], 10, 32)
	if err != nil {
		return 0, false
	}
	return int64(size), true
}

// inIsHTTPRequestLine spots a web client talking to the SMTP port (a
// cross-protocol attack vector): "GET / HTTP/1.1" and friends.
func inIsHTTPRequestLine(upper string) bool {
	for _, m := range []string{"GET ", "POST ", "HEAD ", "CONNECT ", "PUT ", "OPTIONS "} {
		if strings.HasPrefix(upper, m) && strings.Contains(upper, " HTTP/") {
			return true
		}
	}
	return false
}
