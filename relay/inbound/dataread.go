package inbound

import (
	"strconv"
	"strings"
)

// wire follows the raw byte stream a client sends, below go-smtp's
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
type wire struct {
	mode      wireMode
	line      []byte // start of the current command line (capped)
	lineLen   int    // full length of the current command line
	chunkLeft int64  // BDAT bytes still to pass through unparsed
	dstate    dotState
	prevCR    bool
	bare      bool // a lone CR or LF was seen in the current DATA
	lines     int  // command lines seen so far
}

type wireMode int

const (
	modeCommand wireMode = iota
	modeData
	modeChunk
)

type dotState int

// These mirror go-smtp's dataReader states.
const (
	dotBeginLine dotState = iota
	dotDot
	dotDotCR
	dotCR
	dotData
)

// lineEvent is what a completed command line asks of the conn.
type lineEvent int

const (
	evNone     lineEvent = iota
	evData               // DATA: hold what follows until the reply is known
	evStartTLS           // STARTTLS: handled by the conn, not go-smtp
	evHTTP               // an HTTP request line: answer 5xx and close
	evHelo               // HELO/EHLO: the client introduced itself
	evEhlo               // EHLO specifically
	evMail               // MAIL: the path is parsed by the conn (rewritePath)
	evRcpt               // RCPT: likewise
)

// lineKeep is how much of a command line we keep to classify it.
const lineKeep = 128

// feed scans p and returns how many bytes it consumed. It stops right after
// a command line whose event is not evNone, returning the event and the
// full length of that line (which may have begun in an earlier feed).
func (w *wire) feed(p []byte) (n int, ev lineEvent, lineLen int) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch w.mode {
		case modeChunk:
			// BDAT chunks are opaque octets (RFC 3030 §2): no dot
			// handling, no line parsing.
			take := int64(len(p) - i)
			if take > w.chunkLeft {
				take = w.chunkLeft
			}
			w.chunkLeft -= take
			i += int(take) - 1
			if w.chunkLeft == 0 {
				w.mode = modeCommand
			}
		case modeData:
			w.dataByte(c)
		case modeCommand:
			w.lineLen++
			if len(w.line) < lineKeep {
				w.line = append(w.line, c)
			}
			if c != '\n' {
				continue
			}
			l := w.lineLen
			if ev := w.endLine(); ev != evNone {
				return i + 1, ev, l
			}
		}
	}
	return len(p), evNone, 0
}

// dataByte advances the DATA state by one byte.
func (w *wire) dataByte(c byte) {
	if c == '\n' && !w.prevCR || c != '\n' && w.prevCR {
		w.bare = true
	}
	w.prevCR = c == '\r'
	switch w.dstate {
	case dotBeginLine:
		switch c {
		case '.':
			w.dstate = dotDot
		case '\r':
			w.dstate = dotCR
		default:
			w.dstate = dotData
		}
	case dotDot:
		if c == '\r' {
			w.dstate = dotDotCR
		} else {
			w.dstate = dotData
		}
	case dotDotCR:
		if c == '\n' {
			// "\r\n.\r\n": the end of the message (RFC 5321 §4.1.1.4).
			w.mode = modeCommand
			w.prevCR = false
			return
		}
		w.dstate = dotData
	case dotCR:
		if c == '\n' {
			w.dstate = dotBeginLine
		} else {
			w.dstate = dotData
		}
	case dotData:
		if c == '\r' {
			w.dstate = dotCR
		}
	}
}

// startData switches to DATA mode after a 354 reply.
func (w *wire) startData() {
	w.mode = modeData
	w.dstate = dotBeginLine
	w.prevCR = false
	w.bare = false
}

// idle reports whether the stream is between commands.
func (w *wire) idle() bool {
	return w.mode == modeCommand && w.lineLen == 0
}

// endLine classifies a complete command line the way go-smtp's parseCmd
// will see it.
func (w *wire) endLine() lineEvent {
	line := strings.TrimRight(string(w.line), "\r\n")
	full := w.lineLen <= lineKeep
	w.line = w.line[:0]
	w.lineLen = 0
	w.lines++
	upper := strings.ToUpper(line)
	if w.lines == 1 && isHTTPRequestLine(upper) {
		return evHTTP
	}
	if strings.HasPrefix(upper, "STARTTLS") {
		return evStartTLS
	}
	if len(line) < 4 || len(line) > 4 && line[4] != ' ' {
		return evNone
	}
	switch upper[:4] {
	case "DATA":
		return evData
	case "EHLO":
		return evEhlo
	case "HELO":
		return evHelo
	case "MAIL", "RCPT":
		if len(line) > 5 { // go-smtp refuses shorter ones itself
			if upper[:4] == "MAIL" {
				return evMail
			}
			return evRcpt
		}
	case "BDAT":
		if full {
			if size, ok := bdatSize(line[4:]); ok && size > 0 {
				w.mode = modeChunk
				w.chunkLeft = size
			}
		}
	}
	return evNone
}

// bdatSize mirrors go-smtp's handleBdat argument checks: when they pass,
// go-smtp reads the chunk whatever it replies, so we must skip it too.
func bdatSize(arg string) (int64, bool) {
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

// isHTTPRequestLine spots a web client talking to the SMTP port (a
// cross-protocol attack vector): "GET / HTTP/1.1" and friends.
func isHTTPRequestLine(upper string) bool {
	for _, m := range []string{"GET ", "POST ", "HEAD ", "CONNECT ", "PUT ", "OPTIONS "} {
		if strings.HasPrefix(upper, m) && strings.Contains(upper, " HTTP/") {
			return true
		}
	}
	return false
}
