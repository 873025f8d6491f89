package inbound

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/emersion/go-smtp"

	"sluice/dsn"
	"sluice/queue"
)

// The end of DATA streams: the header section is read into memory (it is
// bounded, and it is all that Received:, Message-ID:, Date: and the loop
// check need), then the header as stored and the rest of the body go to
// a Spool as they arrive. Nothing holds the whole message in memory; a
// large one is in a file before its 250.

// maxHeader bounds the header section held in memory: a larger one is
// refused with 552 5.3.4. Exim's header_maxsize has the same default;
// real header sections are a few KB.
const maxHeader = 1 << 20

// copyBuf is the read size of the body copy.
const copyBuf = 32 << 10

var errHeaderSectionTooBig = errors.New("relay: header section too large")

// copyBufs recycles the copy buffers: at thousands of small messages a
// second, a fresh 32 KB per message is most of the garbage.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBuf); return &b }}

func (ss *session) data(r io.Reader) error {
	scan := &bareScan{}
	tr := io.TeeReader(r, scan)
	hdr, rest, ended, err := readHeader(tr)
	if errors.Is(err, errHeaderSectionTooBig) {
		ss.s.log.Info("header section too large", "client", ss.c.ip, "trace", ss.c.trace)
		return errHeaderTooBig // go-smtp reads on to the end of DATA
	}
	isTLS, _, _, ehlo := ss.c.tlsState()
	now := ss.g.o.Now()
	m := &Message{
		From:       ss.from,
		Rcpts:      append([]string(nil), ss.rcpts...),
		ClientAddr: ss.c.ip,
		Helo:       ss.sc.Hostname(),
		SMTPUTF8:   ss.utf8,
		RequireTLS: ss.requireTLS,
		Received:   now,
		DSN:        ss.env,
		RcptDSN:    append([]dsn.Rcpt(nil), ss.rcptDSN...),
	}
	if ss.user != nil {
		m.User = ss.user.Name
	}
	tc := trace{
		Helo: m.Helo, Client: m.ClientAddr, Hostname: ss.g.o.Hostname,
		Protocol: protocol(ehlo, isTLS, ss.user != nil), ID: ss.c.trace, Date: now,
	}
	if len(m.Rcpts) == 1 {
		tc.Rcpt = m.Rcpts[0]
	}
	var hops int
	m.Header, hops = prepareHeader(hdr, ended, tc)
	loop := hops > maxReceived

	// The rest is read to its end in every case (the bare CR/LF verdict
	// needs every byte); it is kept only when it may be accepted.
	sink := &sink{w: io.Discard}
	if err == nil && !loop {
		sp := ss.g.o.Store.NewSpool()
		defer sp.Discard()
		m.Content = sp
		sink.w = sp
		_, _ = sink.Write(m.Header)
		_, _ = sink.Write(rest)
	}
	if err == nil {
		buf := copyBufs.Get().(*[]byte)
		_, err = io.CopyBuffer(sink, tr, *buf)
		copyBufs.Put(buf)
	}
	bare := ss.c.takeBare()
	if err != nil {
		var se *smtp.SMTPError
		switch {
		case errors.As(err, &se) && se.Code == 552:
			// go-smtp reads on to the end of DATA after we return, so
			// the client gets this one reply and nothing is parsed as
			// a command in between.
			return errTooBig
		case errors.Is(err, smtp.ErrTooLongLine):
			ss.c.setCloseAfterReply()
			return errLineTooLong
		}
		ss.s.log.Info("data read failed", "client", ss.c.ip, "trace", ss.c.trace, "err", err)
		return errTempLocal
	}
	if bare || scan.found() {
		ss.s.log.Warn("bare CR or LF in data", "client", ss.c.ip, "trace", ss.c.trace)
		return errBareLF // fatal: conn closes after writing it
	}
	if !ss.current() || len(ss.rcpts) == 0 {
		return errSequence
	}
	if loop {
		ss.s.log.Warn("mail loop", "client", ss.c.ip, "trace", ss.c.trace, "received", hops)
		return errLoop
	}
	if sink.err != nil {
		ss.s.log.Error("spooling the message failed", "client", ss.c.ip, "trace", ss.c.trace, "err", sink.err)
		return storeReply(sink.err)
	}
	id, err := ss.g.accept(context.Background(), ss.s, m, []any{"client", ss.c.ip, "trace", ss.c.trace})
	if err != nil {
		return err
	}
	// A 250 carrying the queue id; go-smtp writes any *SMTPError as is.
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: fmt.Sprintf("OK: queued as %s", id)}
}

// storeReply is the reply to a storage failure: never a permanent code.
func storeReply(err error) *smtp.SMTPError {
	if errors.Is(err, queue.ErrNoSpace) {
		return errNoSpace
	}
	return errTempLocal
}

// readHeader reads r up to the end of the header section: the first
// empty line (RFC 5322 §2.1), or the end of the message when it has none
// (a headers-only message). hdr includes the empty line; rest is what was
// read past it. A header section over maxHeader fails with
// errInHeaderTooBig.
func readHeader(r io.Reader) (hdr, rest []byte, ended bool, err error) {
	buf := make([]byte, 0, 8<<10)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), maxHeader+1-len(buf)))
		}
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		from := max(len(buf)-3, 0)
		buf = buf[:len(buf)+n]
		end := headerEndFrom(buf, from)
		if end > maxHeader || end < 0 && len(buf) > maxHeader {
			return nil, nil, false, errHeaderSectionTooBig
		}
		if end >= 0 {
			return buf[:end], buf[end:], true, nil
		}
		if rerr == io.EOF {
			return buf, nil, false, nil
		}
		if rerr != nil {
			return buf, nil, false, rerr
		}
	}
}

// sink passes writes on to w until one fails, then keeps the error and
// discards the rest, so that the data is still read to its end (and
// scanned) after the disk filled up.
type sink struct {
	w   io.Writer
	err error
}

func (s *sink) Write(p []byte) (int, error) {
	if s.err == nil {
		if _, err := s.w.Write(p); err != nil {
			s.err = err
		}
	}
	return len(p), nil
}

// bareScan watches a byte stream for a CR not followed by LF or an LF
// not preceded by CR (RFC 5321 §2.3.8), across writes.
type bareScan struct {
	prevCR, bare bool
}

func (s *bareScan) Write(p []byte) (int, error) {
	if s.bare || len(p) == 0 {
		return len(p), nil
	}
	i := 0
	if s.prevCR {
		if p[0] != '\n' {
			s.bare = true
			return len(p), nil
		}
		i = 1
	}
	s.prevCR = false
	for {
		j := bytes.IndexAny(p[i:], "\r\n")
		if j < 0 {
			return len(p), nil
		}
		j += i
		switch {
		case p[j] == '\n':
			s.bare = true
			return len(p), nil
		case j+1 == len(p):
			s.prevCR = true
			return len(p), nil
		case p[j+1] != '\n':
			s.bare = true
			return len(p), nil
		}
		i = j + 2
	}
}

// found reports a bare CR or LF so far, counting a CR at the very end.
func (s *bareScan) found() bool { return s.bare || s.prevCR }
