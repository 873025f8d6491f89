package fakemx

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"
)

// session is one SMTP conversation (RFC 5321). It is used by one goroutine.
type session struct {
	s    *Server
	c    net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	ip   string
	helo string
	tls  bool
	// transaction state (RFC 5321 §3.3)
	inMail bool
	from   string
	rcpts  []string
	quit   bool
}

func newSession(s *Server, c net.Conn) *session {
	ip, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		ip = c.RemoteAddr().String()
	}
	return &session{s: s, c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 4<<10), ip: ip}
}

func (ss *session) run() {
	defer ss.c.Close()
	if rep, ok := ss.s.m.Connect(ss.s.now()); !ok {
		ss.send(rep)
		return
	}
	defer ss.s.m.Release()
	if rep, ok := ss.s.m.script(StageGreeting, ss.ip); ok {
		ss.sendScripted(rep)
		if rep.Code >= 400 {
			// RFC 5321 §3.1 lets a refusing server close after a 554
			// greeting too; a 421 must close (§3.8).
			return
		}
	} else {
		ss.send(Reply{220, []string{ss.s.o.Hostname + " ESMTP fakemx"}})
	}
	for !ss.quit {
		_ = ss.c.SetReadDeadline(time.Now().Add(ss.s.o.IdleTimeout))
		line, err := ss.readLine()
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				ss.send(Reply{500, []string{"5.5.2 Line too long"}})
				continue
			}
			return
		}
		ss.command(line)
	}
}

// readLine reads one command line without its CRLF. Command lines are at
// most 512 octets (RFC 5321 §4.5.3.1.4); longer ones are drained and
// refused rather than buffered.
func (ss *session) readLine() (string, error) {
	b, err := ss.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = ss.r.ReadSlice('\n')
		}
		if err != nil {
			return "", err
		}
		return "", bufio.ErrBufferFull
	}
	if err != nil {
		return "", err
	}
	return string(bytes.TrimRight(b, "\r\n")), nil
}

// send writes a reply. It flushes only when the client has nothing more
// buffered, which keeps PIPELINING (RFC 2920) batches to one write. A 421
// closes the session (RFC 5321 §3.8).
func (ss *session) send(r Reply) {
	if r.Code == 421 {
		ss.quit = true
	}
	_ = ss.c.SetWriteDeadline(time.Now().Add(ss.s.o.IdleTimeout))
	_, _ = ss.w.Write(r.wire())
	if ss.quit || ss.r.Buffered() == 0 {
		_ = ss.w.Flush()
	}
}

// sendScripted sends a Script rule's reply and then its unrequested
// extra one, if any: in the same write, or in a second one (Rule.Later).
func (ss *session) sendScripted(r scripted) {
	if r.extra == nil {
		ss.send(r.Reply)
		return
	}
	_ = ss.c.SetWriteDeadline(time.Now().Add(ss.s.o.IdleTimeout))
	_, _ = ss.w.Write(r.wire())
	if r.later {
		_ = ss.w.Flush()
	}
	// Counted before the client can read it, so a test that has read the
	// extra reply always finds it in Stats.
	ss.s.m.count(func(st *Stats) { st.ExtraReplies++ })
	_, _ = ss.w.Write(r.extra.wire())
	_ = ss.w.Flush()
}

func (ss *session) reset() {
	ss.inMail, ss.from, ss.rcpts = false, "", nil
}

var (
	replyOK        = Reply{250, []string{"2.0.0 Ok"}}
	replyBadSeq    = Reply{503, []string{"5.5.1 Bad sequence of commands"}}
	replySyntax    = Reply{501, []string{"5.5.4 Syntax error in parameters"}}
	replyUnknown   = Reply{500, []string{"5.5.2 Command not recognized"}}
	replyNoTLS     = Reply{502, []string{"5.5.1 STARTTLS not offered"}}
	replyNeedHello = Reply{503, []string{"5.5.1 Send EHLO first"}}
)

func (ss *session) command(line string) {
	verb, arg, _ := strings.Cut(line, " ")
	switch strings.ToUpper(verb) {
	case "EHLO", "HELO":
		ss.hello(strings.ToUpper(verb) == "EHLO", strings.TrimSpace(arg))
	case "STARTTLS":
		ss.startTLS()
	case "MAIL":
		ss.mail(arg)
	case "RCPT":
		ss.rcpt(arg)
	case "DATA":
		ss.data()
	case "RSET":
		ss.reset()
		ss.send(replyOK)
	case "NOOP":
		ss.send(replyOK)
	case "VRFY":
		ss.send(Reply{252, []string{"2.5.0 Cannot VRFY user"}})
	case "QUIT":
		ss.send(Reply{221, []string{"2.0.0 Bye"}})
		ss.quit = true
	default:
		ss.send(replyUnknown)
	}
}

func (ss *session) hello(ehlo bool, name string) {
	if name == "" {
		ss.send(replySyntax)
		return
	}
	ss.s.m.count(func(st *Stats) { st.EHLONames[name]++ })
	ss.reset() // RFC 5321 §4.1.4: EHLO implies RSET
	if rep, ok := ss.s.m.script(StageEHLO, name); ok {
		ss.sendScripted(rep)
		if rep.Code < 300 {
			ss.helo = name
		}
		return
	}
	ss.helo = name
	if !ehlo {
		ss.send(Reply{250, []string{ss.s.o.Hostname}})
		return
	}
	lines := []string{ss.s.o.Hostname, "PIPELINING", "ENHANCEDSTATUSCODES"}
	if !ss.s.o.No8BitMIME {
		lines = append(lines, "8BITMIME")
	}
	if !ss.s.o.NoSMTPUTF8 {
		lines = append(lines, "SMTPUTF8")
	}
	if ss.s.tlsConf != nil && !ss.tls {
		lines = append(lines, "STARTTLS")
	}
	if ss.s.o.REQUIRETLS && ss.tls {
		lines = append(lines, "REQUIRETLS") // RFC 8689 §4.1: over TLS only
	}
	ss.send(Reply{250, lines})
}

func (ss *session) startTLS() {
	if ss.s.tlsConf == nil {
		ss.send(replyNoTLS)
		return
	}
	if ss.tls {
		ss.send(replyBadSeq)
		return
	}
	ss.send(Reply{220, []string{"2.0.0 Ready to start TLS"}})
	_ = ss.w.Flush()
	tc := tls.Server(ss.c, ss.s.tlsConf)
	_ = tc.SetDeadline(time.Now().Add(ss.s.o.IdleTimeout))
	if err := tc.Handshake(); err != nil {
		ss.s.log.Debug("fakemx starttls", "err", err)
		ss.quit = true
		return
	}
	_ = tc.SetDeadline(time.Time{})
	// RFC 3207 §4.2: forget everything from before TLS, including any
	// plaintext the client pipelined after STARTTLS (a command injection).
	ss.c, ss.tls, ss.helo = tc, true, ""
	ss.r = bufio.NewReaderSize(tc, 64<<10)
	ss.w = bufio.NewWriterSize(tc, 4<<10)
	ss.reset()
	ss.s.m.count(func(st *Stats) { st.TLSSessions++ })
}

func (ss *session) mail(arg string) {
	if ss.helo == "" {
		ss.send(replyNeedHello)
		return
	}
	if ss.inMail {
		ss.send(replyBadSeq)
		return
	}
	from, ok := parsePath(arg, "FROM:")
	if !ok {
		ss.send(replySyntax)
		return
	}
	requireTLS := false
	for _, p := range strings.Fields(arg)[1:] {
		requireTLS = requireTLS || strings.EqualFold(p, "REQUIRETLS")
	}
	if requireTLS && !(ss.s.o.REQUIRETLS && ss.tls) {
		ss.send(Reply{555, []string{"5.5.4 REQUIRETLS not offered"}})
		return
	}
	if requireTLS {
		ss.s.m.count(func(st *Stats) { st.RequireTLSMails++ })
	}
	if rep, ok := ss.s.m.script(StageMail, from); ok {
		ss.sendScripted(rep)
		if rep.Code < 300 {
			ss.inMail, ss.from = true, from
		}
		return
	}
	if rep, ok := ss.s.m.Mail(ss.s.now()); !ok {
		ss.send(rep)
		return
	}
	ss.inMail, ss.from = true, from
	ss.send(Reply{250, []string{"2.1.0 Ok"}})
}

func (ss *session) rcpt(arg string) {
	if !ss.inMail {
		ss.send(replyBadSeq)
		return
	}
	to, ok := parsePath(arg, "TO:")
	if !ok || to == "" {
		ss.send(replySyntax)
		return
	}
	rep, refused := ss.s.m.script(StageRcpt, to)
	if refused {
		ss.s.m.noteAttempt(ss.s.now(), to)
	} else {
		rep.Reply, refused = ss.s.m.Rcpt(ss.s.now(), ss.ip, ss.from, to)
	}
	if refused {
		ss.sendScripted(rep)
		if rep.Code < 300 {
			ss.rcpts = append(ss.rcpts, to)
		}
		return
	}
	ss.rcpts = append(ss.rcpts, to)
	ss.send(Reply{250, []string{"2.1.5 Ok"}})
}

func (ss *session) data() {
	if !ss.inMail || len(ss.rcpts) == 0 {
		ss.send(Reply{554, []string{"5.5.1 No valid recipients"}})
		return
	}
	if rep, ok := ss.s.m.script(StageData, append([]string{ss.from}, ss.rcpts...)...); ok && rep.Code != 354 {
		// A receiver that answers DATA with anything but 354 reads no
		// body; the client must not take a 250 here for a delivery.
		ss.sendScripted(rep)
		return
	} else if ok {
		ss.sendScripted(rep)
	} else {
		ss.send(Reply{354, []string{"End data with <CR><LF>.<CR><LF>"}})
	}
	_ = ss.w.Flush()
	_ = ss.c.SetReadDeadline(time.Now().Add(ss.s.o.IdleTimeout))
	res, err := readData(ss.r, ss.s.o.KeepBodies)
	if err != nil {
		ss.quit = true
		return
	}
	defer ss.reset()
	if rep, ok := ss.s.m.script(StageDataEnd, append([]string{ss.from}, ss.rcpts...)...); ok {
		if rep.Code < 300 {
			ss.s.deliver(ss.rcpts, res)
		}
		ss.sendScripted(rep)
		return
	}
	n := ss.s.deliver(ss.rcpts, res)
	ss.send(Reply{250, []string{"2.0.0 Ok: queued as " + strconv.Itoa(n)}})
}

// deliver records a message accepted at end of DATA (and keeps its body
// when Options.KeepBodies) and returns its sequence number.
func (s *Server) deliver(rcpts []string, res dataResult) int {
	if s.o.KeepBodies {
		s.mu.Lock()
		s.bodies = append(s.bodies, res.raw)
		s.mu.Unlock()
	}
	return s.m.Deliver(s.now(), rcpts, res.messageID, res.bare)
}

// parsePath reads "FROM:<a@b> PARAMS" or "TO:<a@b>" (RFC 5321 §4.1.2) and
// returns the address without brackets. Parameters are ignored; a space
// after the colon is tolerated since many clients send one.
func parsePath(arg, prefix string) (string, bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", false
	}
	rest := strings.TrimLeft(arg[len(prefix):], " ")
	if !strings.HasPrefix(rest, "<") {
		return "", false
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", false
	}
	addr := rest[1:end]
	// Drop an obsolete source route "@a,@b:" (RFC 5321 §4.1.2, C.).
	if strings.HasPrefix(addr, "@") {
		_, after, ok := strings.Cut(addr, ":")
		if !ok {
			return "", false
		}
		addr = after
	}
	if strings.ContainsAny(addr, " \t<>") {
		return "", false
	}
	return addr, true
}
