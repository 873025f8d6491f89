package outbound

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"sluice/reply"
)

// wire is the command/reply layer over one connection (plain or TLS).
// We drive SMTP ourselves rather than through go-smtp's client because
// that client says "EHLO localhost" before STARTTLS, re-sends EHLO after
// every RSET, always adds BODY=8BITMIME and sets no deadline on the body.
//
// We never pipeline, so at most one reply is awaited at a time, and only
// between writing a command and reading its reply. Anything else the
// server sends is out of sequence (RFC 5321 §4.3.2 pairs every command
// with one reply): bytes already buffered after a reply (same segment) or
// bytes arriving before the next command (next segment). Either is
// reported as reply.ErrProtocol, because from then on a reply can no
// longer be matched to its command: a 250 read for DATA might be the echo
// of an earlier one.
type wire struct {
	ctx  context.Context // the current operation's; checked after each deadline is set
	conn net.Conn        // what we read and write: the TCP conn or the TLS conn over it
	sock syscall.RawConn // the TCP socket under conn; nil when the dialer gave no socket
	br   *bufio.Reader
	bw   *bufio.Writer
	now  func() time.Time
	cmdT time.Duration
}

// pendingWait bounds the read that looks for unsolicited data before a
// command, and only runs when the socket has bytes waiting: plaintext
// bytes are read at once; under TLS they may be records that are not
// application data (TLS 1.3 NewSessionTicket or KeyUpdate, RFC 8446 §4.6),
// which crypto/tls consumes before it waits for more, so this is how long
// a session pays for a post-handshake message.
const pendingWait = 2 * time.Millisecond

func newWire(conn, sock net.Conn, now func() time.Time, cmdTimeout time.Duration) *wire {
	w := &wire{
		conn: conn,
		br:   bufio.NewReaderSize(conn, maxReplyLine),
		bw:   bufio.NewWriter(conn),
		now:  now,
		cmdT: cmdTimeout,
	}
	if sc, ok := sock.(syscall.Conn); ok {
		w.sock, _ = sc.SyscallConn()
	}
	return w
}

// protoErr builds a reply.ErrProtocol error; the caller adds the stage.
func protoErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{reply.ErrProtocol}, a...)...)
}

// deadline arms the conn for the next d. The context check comes after
// SetDeadline: a cancellation that fired earlier is seen here, and one that
// fires later overrides our deadline with one in the past (see interrupt).
func (w *wire) deadline(d time.Duration) error {
	if err := w.conn.SetDeadline(w.now().Add(d)); err != nil {
		return err
	}
	if w.ctx != nil {
		if err := w.ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// read waits for one reply within d. A reply followed by more buffered
// bytes is out of sequence: we asked for one reply only.
func (w *wire) read(d time.Duration) (response, error) {
	if err := w.deadline(d); err != nil {
		return response{}, err
	}
	r, err := readResponse(w.br)
	if err == nil && w.br.Buffered() > 0 {
		err = protoErr("unrequested data after the reply %q: %q", r.line(), w.extra())
	}
	return r, err
}

// cmd sends one command line and reads its reply, both within the command
// timeout (RFC 5321 §4.5.3.2 gives per-command minimums; we use one).
// Data the server sent before the command is an error, not its reply:
// that also stops the STARTTLS injection attack (RFC 3207 §6), where
// plaintext sent with the 220 would be read as if it came over TLS.
func (w *wire) cmd(line string) (response, error) {
	if strings.ContainsAny(line, "\r\n") {
		return response{}, fmt.Errorf("relay: command contains CR or LF: %q", clip(line))
	}
	verb, _, _ := strings.Cut(line, " ")
	if err := w.unsolicited("before " + verb); err != nil {
		return response{}, err
	}
	if err := w.deadline(w.cmdT); err != nil {
		return response{}, err
	}
	if _, err := w.bw.WriteString(line + "\r\n"); err != nil {
		return response{}, err
	}
	if err := w.bw.Flush(); err != nil {
		return response{}, err
	}
	return w.read(w.cmdT)
}

// unsolicited reports data the server sent while no reply was awaited:
// bytes in our buffer, or bytes waiting on the socket. The socket test is
// one non-blocking peek; only when it finds bytes do we read through conn
// (decrypting under TLS), so that TLS records that carry no data are not
// mistaken for a reply. `when` says where we are, for the error.
func (w *wire) unsolicited(when string) error {
	if w.br.Buffered() == 0 {
		if w.sock == nil {
			return nil
		}
		// Armed first: the peek needs a deadline that has not passed,
		// and a cancelled context must win over it.
		if err := w.deadline(pendingWait); err != nil {
			return err
		}
		if !socketReadable(w.sock) {
			return nil
		}
		_, err := w.br.Peek(1)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && (w.ctx == nil || w.ctx.Err() == nil) {
			return nil // no application data after all (or not yet a whole record)
		}
		if err != nil && w.br.Buffered() == 0 {
			return err // the server closed, or the conn broke
		}
	}
	return protoErr("unsolicited data %s: %q", when, w.extra())
}

// extra renders what is buffered, clipped and without control characters,
// for the log line that says what the server sent.
func (w *wire) extra() string {
	b, _ := w.br.Peek(min(w.br.Buffered(), 200))
	return clip(sanitize(string(b)))
}

// socketReadable reports whether the socket has bytes (or an EOF)
// waiting, without consuming them and without blocking.
func socketReadable(rc syscall.RawConn) bool {
	readable := false
	err := rc.Read(func(fd uintptr) bool {
		readable = peekFD(fd)
		return true // never wait for readiness
	})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	return readable || err != nil
}

// extensions parses the EHLO reply's extension lines (RFC 5321 §4.1.1.1): the
// first line is the greeting, each other line "KEYWORD [params]".
func extensions(r response) map[string]string {
	ext := make(map[string]string)
	for i, l := range r.Lines {
		if i == 0 {
			continue
		}
		k, v, _ := strings.Cut(l, " ")
		ext[strings.ToUpper(k)] = v
	}
	return ext
}

// netReply reports a network, TLS or protocol error at a stage.
func netReply(stage reply.Stage, err error) reply.Reply {
	return reply.Reply{Stage: stage, Err: err}
}
