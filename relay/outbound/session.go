package outbound

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"sluice/dsn"
	"sluice/reply"
)

// Delivery is one message for one session: all recipients share one
// transaction.
type Delivery struct {
	ID, From string
	Rcpts    []string
	// Body is read once, while DATA is sent, and never held in memory
	// whole: CRLF line endings, not dot-stuffed.
	Body     io.Reader
	Size     int64 // the length of Body, for SIZE= (RFC 1870)
	EightBit bool  // Body has a byte >= 0x80: BODY=8BITMIME when offered (RFC 6152)
	SMTPUTF8 bool
	// RequireTLS: the message was given REQUIRETLS (RFC 8689); it goes
	// only over verified TLS to a next hop that offers REQUIRETLS, and
	// the parameter goes on (§4.2.1).
	RequireTLS bool
	// The DSN parameters (RFC 3461) given to us: passed on at MAIL and
	// RCPT when the next hop offers DSN (see DSN). RcptDSN is nil or
	// parallel to Rcpts.
	Env     dsn.Envelope
	RcptDSN []dsn.Rcpt
}

// Session is one SMTP connection to a next hop; not safe for concurrent
// use. It can carry several transactions in a row.
type Session struct {
	o        *Client
	hop      Hop
	req      TLSRequirement // the TLS policy the session was opened under
	domain   string         // the recipient domain it was opened for
	nextHop  string         // nextHopKey of domain: "" when unknown
	raw      net.Conn       // the TCP conn, also under TLS: deadlines and interrupts go here
	w        *wire
	ext      map[string]string
	tls      bool
	verified bool // TLS whose peer passed req's verification (verify, DANE, enforced MTA-STS; RFC 8689 §4.2.1 item 2: what REQUIRETLS mail needs)
	usable   bool
	// single: the session was opened for one TLS-RPT report under a
	// relaxed requirement (reportRequirement); after one transaction it
	// is not Usable, so no other mail rides it.
	single bool
	closed bool
	sent   int
	buf    []byte // body copy buffer, kept for the session's next transaction
}

var errUnusable = errors.New("relay: session is no longer usable")

// quitTimeout bounds the courtesy QUIT in Close: the mail is already
// delivered or not, and a slow server must not hold a worker.
const quitTimeout = 5 * time.Second

// quitDrain bounds how long Close waits, after the 221 to QUIT, for the
// receiver to close the connection (RFC 5321 §4.1.1.10: it replies, then
// closes). A var for tests.
var quitDrain = 500 * time.Millisecond

// Relay describes the peer for the mail log: "host[ip]:port".
func (s *Session) Relay() string {
	return s.hop.Host + "[" + s.hop.Addr.Addr().String() + "]:" + strconv.Itoa(int(s.hop.Addr.Port()))
}

// DSN reports whether the next hop offers DSN (RFC 3461): Send then
// passes NOTIFY, ORCPT, RET and ENVID on, and the next hop, not us,
// reports success (RFC 3461 §4.1: a relay to a DSN-capable MTA issues
// no success DSN).
func (s *Session) DSN() bool {
	_, ok := s.ext["DSN"]
	return ok
}

// TLS reports whether the session runs over STARTTLS.
func (s *Session) TLS() bool { return s.tls }

// Usable is false after a 421, a network error, a timeout or a protocol
// error, and when the server has closed the connection or sent something
// unasked since the last reply (typically a 421 before it drops an idle
// connection, RFC 5321 §3.8): the caller must not send more on this
// session, and opens a new one instead. The check costs one non-blocking
// peek at the socket.
func (s *Session) Usable() bool {
	if !s.usable || s.closed {
		return false
	}
	if err := s.w.unsolicited("between transactions"); err != nil {
		s.usable = false
		s.o.log.Info("relay: connection closed or out of sequence between transactions; not reused", "relay", s.Relay(), "err", err)
	}
	return s.usable
}

// SameNextHop reports whether mail for domain goes to the same next hop as
// the domain this session was opened for (same route, smarthost or MX host
// set, same TLS mode; see nextHopKey), so that the session may carry it:
// providers host many domains behind one set of MX hosts.
func (s *Session) SameNextHop(ctx context.Context, domain string) bool {
	domain = normDomain(domain)
	if domain == s.domain {
		return true
	}
	if s.nextHop == "" {
		return false
	}
	k, err := s.o.nextHopKey(ctx, domain)
	if err != nil || k != s.nextHop {
		return false
	}
	// The same hosts, but domain's own TLS policy (a tls_policy entry,
	// an MTA-STS policy) must be the one this session was opened
	// under: a stricter policy never rides a laxer session.
	req, err := s.o.requirement(ctx, domain, s.hop)
	return err == nil && sameRequirement(s.req, req)
}

// TLSPolicy is the TLS requirement the session was opened under and
// whether its peer passed that requirement's verification.
func (s *Session) TLSPolicy() (req TLSRequirement, verified bool) { return s.req, s.verified }

// Sent is the number of transactions completed (final 2xx) on this session.
func (s *Session) Sent() int { return s.sent }

// Close sends QUIT (best effort, short deadline) and closes the connection.
// A session retired by an error gets no QUIT: the server's state, or the
// stream itself, can no longer be trusted.
func (s *Session) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.usable {
		s.w.ctx = nil
		s.w.cmdT = min(s.w.cmdT, quitTimeout)
		if r, err := s.w.cmd("QUIT"); err == nil && r.Code == 221 {
			s.awaitHangUp()
		}
	}
	s.usable = false
	return s.w.conn.Close()
}

// awaitHangUp waits, up to quitDrain, for the receiver to close the
// connection after its 221. A receiver counts the session until then (a
// session limit per client IP is counted by process or connection), so
// a session slot given back before would let the next session, this
// node's or another's, reach a receiver still counting this one and be
// refused with 421 at the greeting. Whatever arrives meanwhile is
// discarded: the session is over.
func (s *Session) awaitHangUp() {
	if err := s.w.conn.SetReadDeadline(s.w.now().Add(quitDrain)); err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(s.w.br, 64<<10))
}

// interrupt aborts whatever I/O is in flight; used when a context ends.
func (s *Session) interrupt() { _ = s.raw.SetDeadline(time.Unix(1, 0)) }

// netReply reports a network or protocol error at a stage and retires the
// session: after a timeout, a broken pipe or an out-of-sequence reply we
// no longer know the protocol state.
func (s *Session) netReply(stage reply.Stage, err error) reply.Reply {
	s.usable = false
	if s.w.ctx != nil && s.w.ctx.Err() != nil && !errors.Is(err, s.w.ctx.Err()) {
		err = fmt.Errorf("%w: %w", s.w.ctx.Err(), err)
	}
	if errors.Is(err, reply.ErrProtocol) {
		s.o.log.Warn("relay: protocol error, dropping the connection", "relay", s.Relay(), "stage", string(stage), "err", err)
	}
	return netReply(stage, err)
}

// unexpected reports a reply code the stage does not allow: not the one
// that advances it and not a 4xx/5xx refusal. The session is retired.
func (s *Session) unexpected(stage reply.Stage, r response, want string) reply.Reply {
	return s.netReply(stage, protoErr("%q at %s, expected %s", r.line(), stage, want))
}

// reply converts a server reply; a 421 means the server is closing the
// channel (RFC 5321 §3.8), whatever the stage.
func (s *Session) reply(stage reply.Stage, r response) reply.Reply {
	if r.Code == 421 {
		s.usable = false
	}
	return toReply(stage, r)
}

// isRefusal reports a 4xx or 5xx: a refusal, the only replies besides
// the expected one that a stage may give (RFC 5321 §4.3.2).
func isRefusal(code int) bool { return code >= 400 && code < 600 }

// Send runs one transaction with all of d's recipients and returns one
// Reply per recipient, in order. A refused recipient does not stop the
// others; the reply to the final dot applies to every accepted one.
//
// The transaction advances only on the expected code at each stage
// (RFC 5321 §4.3.2): 250 to MAIL, 250 or 251 to RCPT, 354 to DATA, and a
// delivery is only a 2xx after the final dot. A 4xx/5xx is a refusal;
// anything else, or data the server sends out of turn (see wire), is a
// protocol error: every recipient the server was asked about gets it, the
// session is retired without QUIT, and nothing counts as delivered.
func (s *Session) Send(ctx context.Context, d *Delivery) []reply.Reply {
	if s.single {
		defer func() { s.usable = false }()
	}
	out := make([]reply.Reply, len(d.Rcpts))
	fill := func(idx []int, r reply.Reply) []reply.Reply {
		for _, i := range idx {
			out[i] = r
		}
		return out
	}
	all := make([]int, len(d.Rcpts))
	for i := range all {
		all[i] = i
	}
	if len(d.Rcpts) == 0 {
		return out
	}
	if !s.usable || s.closed {
		// Not Usable(): data that came in unasked is this transaction's
		// protocol error, reported by the first command below.
		return fill(all, reply.Reply{Stage: reply.StageMail, Err: errUnusable})
	}
	fromPath, ok := formatPath(d.From)
	if !ok {
		return fill(all, reply.Reply{Stage: reply.StageMail, Code: 553, Enhanced: "5.1.7", Text: "malformed sender address"})
	}
	if _, ok := s.ext["SMTPUTF8"]; d.SMTPUTF8 && !ok {
		// RFC 6531 §3.4: without the extension the message cannot be
		// delivered as is; we do not downgrade.
		return fill(all, reply.Reply{Stage: reply.StageMail, Code: 553, Enhanced: "5.6.7",
			Text: "next hop " + s.hop.Host + " does not support SMTPUTF8"})
	}

	if d.RequireTLS {
		if r := s.requireTLS(); r != nil {
			return fill(all, *r)
		}
	}
	if n, err := strconv.ParseInt(s.ext["SIZE"], 10, 64); err == nil && n > 0 && d.Size > n {
		// RFC 1870 §6: the server told us its limit; do not waste a
		// transaction it will refuse.
		return fill(all, reply.Reply{Stage: reply.StageMail, Code: 552, Enhanced: "5.3.4",
			Text: fmt.Sprintf("message size %d exceeds the limit of %d of %s", d.Size, n, s.hop.Host)})
	}
	// Recipients the server is asked about; a malformed one is refused
	// here and never reaches the wire.
	var asked []int
	rcptPaths := make([]string, len(d.Rcpts))
	for i, rcpt := range d.Rcpts {
		var ok bool
		if rcptPaths[i], ok = formatPath(rcpt); !ok || rcpt == "" {
			out[i] = reply.Reply{Stage: reply.StageRcpt, Code: 553, Enhanced: "5.1.3", Text: "malformed recipient address"}
			continue
		}
		asked = append(asked, i)
	}
	if len(asked) == 0 {
		return out
	}

	s.w.ctx = ctx
	stop := context.AfterFunc(ctx, s.interrupt)
	defer func() {
		s.w.ctx = nil
		if !stop() {
			// The interrupt ran, or is about to: the conn's deadline may
			// be in the past at any moment from now on.
			s.usable = false
		}
	}()
	log := s.o.log.With("id", d.ID, "relay", s.Relay())
	defer func() { log.Debug("relay: transaction", "rcpts", len(d.Rcpts), "sent", s.sent, "usable", s.usable) }()

	// failed ends the transaction on a network or protocol error. A
	// protocol error voids every reply of the transaction, refusals
	// included: they may not be answers to the commands we matched them to.
	failed := func(idx []int, stage reply.Stage, err error) []reply.Reply {
		r := s.netReply(stage, err)
		if errors.Is(err, reply.ErrProtocol) {
			idx = asked
		}
		return fill(idx, r)
	}
	// refused ends the transaction on a refusal and resets it; a protocol
	// error found on the way replaces the refusal.
	refused := func(idx []int, stage reply.Stage, r reply.Reply) []reply.Reply {
		if p := s.abortTxn(stage); p != nil {
			return fill(asked, *p)
		}
		return fill(idx, r)
	}

	mail := "MAIL FROM:" + fromPath
	if _, ok := s.ext["8BITMIME"]; ok && d.EightBit {
		mail += " BODY=8BITMIME" // RFC 6152 §2
	}
	if d.SMTPUTF8 {
		mail += " SMTPUTF8" // RFC 6531 §3.4
	}
	if d.RequireTLS {
		mail += " REQUIRETLS" // RFC 8689 §4.2.1: the requirement goes on with the message
	}
	if _, ok := s.ext["SIZE"]; ok {
		mail += " SIZE=" + strconv.FormatInt(d.Size, 10) // RFC 1870 §6
	}
	if s.DSN() {
		// RFC 3461 §5.2: the parameters go on as received.
		if d.Env.Ret != "" {
			mail += " RET=" + string(d.Env.Ret)
		}
		if d.Env.EnvID != "" {
			mail += " ENVID=" + dsn.XText(d.Env.EnvID)
		}
	}
	resp, err := s.w.cmd(mail)
	switch {
	case err != nil:
		return failed(asked, reply.StageMail, err)
	case resp.Code == 250:
	case isRefusal(resp.Code):
		return refused(asked, reply.StageMail, s.reply(reply.StageMail, resp))
	default:
		return fill(asked, s.unexpected(reply.StageMail, resp, "250"))
	}

	var accepted []int
	for n, i := range asked {
		resp, err := s.w.cmd("RCPT TO:" + rcptPaths[i] + s.rcptParams(d, i))
		switch {
		case err != nil:
			return failed(append(accepted, asked[n:]...), reply.StageRcpt, err)
		case resp.Code == 250 || resp.Code == 251:
			accepted = append(accepted, i)
		case resp.Code == 421:
			// The server is closing: nobody in this transaction got
			// through, including those it had accepted.
			r := s.reply(reply.StageRcpt, resp)
			fill(accepted, r)
			return fill(asked[n:], r)
		case isRefusal(resp.Code):
			out[i] = s.reply(reply.StageRcpt, resp)
		default:
			// 252 (cannot verify, RFC 5321 §3.5.3) answers VRFY, not RCPT.
			return fill(asked, s.unexpected(reply.StageRcpt, resp, "250 or 251"))
		}
	}
	if len(accepted) == 0 {
		// RFC 5321 §3.3: no DATA without a valid recipient.
		if p := s.abortTxn(reply.StageRcpt); p != nil {
			return fill(asked, *p)
		}
		return out
	}

	resp, err = s.w.cmd("DATA")
	switch {
	case err != nil:
		return failed(accepted, reply.StageData, err)
	case resp.Code == 354:
	case isRefusal(resp.Code):
		return refused(accepted, reply.StageData, s.reply(reply.StageData, resp))
	default:
		return fill(asked, s.unexpected(reply.StageData, resp, "354"))
	}
	// A reply before the body would answer a command not yet sent.
	if err := s.w.unsolicited("before the message body"); err != nil {
		return failed(accepted, reply.StageData, err)
	}
	if err := s.writeBody(d.Body); err != nil {
		return s.bodyFailed(accepted, err, fill)
	}
	resp, err = s.w.read(s.o.opt.DataTimeout)
	if err == nil {
		// Data that has arrived by now, in a later segment, is as
		// suspect as data in the same one: the reply may not be ours.
		err = s.w.unsolicited(fmt.Sprintf("after the reply %q to the final dot", resp.line()))
	}
	switch {
	case err != nil:
		return failed(accepted, reply.StageDataEnd, err)
	case resp.Code/100 == 2:
		s.sent++
		return fill(accepted, s.reply(reply.StageDataEnd, resp))
	case isRefusal(resp.Code):
		return refused(accepted, reply.StageDataEnd, s.reply(reply.StageDataEnd, resp))
	default:
		return fill(asked, s.unexpected(reply.StageDataEnd, resp, "2xx"))
	}
}

// rcptParams are the DSN parameters of recipient i to pass on: only to
// a next hop that offers DSN, and only those the client gave (RFC 3461
// §5.2.2; without NOTIFY the next hop applies its default, as we would).
func (s *Session) rcptParams(d *Delivery, i int) string {
	if i >= len(d.RcptDSN) || !s.DSN() {
		return ""
	}
	p, out := d.RcptDSN[i], ""
	if p.Notify != 0 {
		out += " NOTIFY=" + p.Notify.String()
	}
	if o := dsn.ORcptParam(p.ORcpt); o != "" {
		out += " ORCPT=" + o
	}
	return out
}

// writeBody streams the body dot-stuffed (RFC 5321 §4.5.2) and the final
// dot, under one DataTimeout deadline for the whole write.
func (s *Session) writeBody(body io.Reader) error {
	if err := s.w.deadline(s.o.opt.DataTimeout); err != nil {
		return err
	}
	if s.buf == nil {
		s.buf = make([]byte, bodyChunk)
	}
	return copyBody(s.w.bw, body, s.buf)
}

// bodyFailed ends a transaction whose body could not be sent whole. A
// bare CR or LF, or a read error on our side, stops it before the final
// dot: the connection is dropped (no QUIT, no RSET: the server is still
// reading data) so the receiver discards what it got (RFC 5321 §3.3,
// §4.1.1.4), and the reply is ours, never the receiver's. A network
// error is reported as one.
func (s *Session) bodyFailed(accepted []int, err error, fill func([]int, reply.Reply) []reply.Reply) []reply.Reply {
	var r reply.Reply
	switch {
	case errors.Is(err, errBareCRLF):
		r = reply.Reply{Stage: reply.StageData, Code: 554, Enhanced: "5.6.0", Text: "message contains a bare CR or LF"}
	case errors.Is(err, errBodyRead):
		r = reply.Reply{Stage: reply.StageData, Code: 451, Enhanced: "4.3.0", Text: "local error reading the queued message"}
		s.o.log.Error("relay: reading the queued message failed; connection dropped before the final dot", "relay", s.Relay(), "err", err)
	default:
		return fill(accepted, s.netReply(reply.StageData, err))
	}
	s.usable = false
	_ = s.w.conn.Close()
	s.closed = true
	return fill(accepted, r)
}

// abortTxn resets a refused transaction so the session can carry the next
// one (RFC 5321 §4.1.1.5). A session that is closing gets no RSET, and
// one whose RSET fails is retired. It returns a protocol error found on
// the way (data before the RSET, a wrong reply to it), stamped with the
// transaction's stage: the refusal it follows cannot be trusted then.
func (s *Session) abortTxn(stage reply.Stage) *reply.Reply {
	if !s.usable {
		return nil
	}
	resp, err := s.w.cmd("RSET")
	switch {
	case err != nil:
		r := s.netReply(stage, err)
		if errors.Is(err, reply.ErrProtocol) {
			return &r
		}
	case resp.Code == 250:
	case isRefusal(resp.Code):
		s.usable = false // a server that refuses RSET is in an unknown state
	default:
		r := s.netReply(stage, protoErr("%q to RSET, expected 250", resp.line()))
		return &r
	}
	return nil
}
