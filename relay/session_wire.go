package relay

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"sluice/policy"
)

// outWire is the command/reply layer over one connection (plain or TLS).
// We drive SMTP ourselves rather than through go-smtp's client because
// that client says "EHLO localhost" before STARTTLS, re-sends EHLO after
// every RSET, always adds BODY=8BITMIME and sets no deadline on the body.
type outWire struct {
	ctx  context.Context // the current operation's; checked after each deadline is set
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	now  func() time.Time
	cmdT time.Duration
}

func newOutWire(conn net.Conn, now func() time.Time, cmdTimeout time.Duration) *outWire {
	return &outWire{
		conn: conn,
		br:   bufio.NewReaderSize(conn, outMaxReplyLine),
		bw:   bufio.NewWriter(conn),
		now:  now,
		cmdT: cmdTimeout,
	}
}

// deadline arms the conn for the next d. The context check comes after
// SetDeadline: a cancellation that fired earlier is seen here, and one that
// fires later overrides our deadline with one in the past (see interrupt).
func (w *outWire) deadline(d time.Duration) error {
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

// read waits for one reply within d.
func (w *outWire) read(d time.Duration) (outResp, error) {
	if err := w.deadline(d); err != nil {
		return outResp{}, err
	}
	return outReadResp(w.br)
}

// cmd sends one command line and reads its reply, both within the command
// timeout (RFC 5321 §4.5.3.2 gives per-command minimums; we use one).
func (w *outWire) cmd(line string) (outResp, error) {
	if strings.ContainsAny(line, "\r\n") {
		return outResp{}, fmt.Errorf("relay: command contains CR or LF: %q", outClip(line))
	}
	if err := w.deadline(w.cmdT); err != nil {
		return outResp{}, err
	}
	if _, err := w.bw.WriteString(line + "\r\n"); err != nil {
		return outResp{}, err
	}
	if err := w.bw.Flush(); err != nil {
		return outResp{}, err
	}
	return outReadResp(w.br)
}

// outExt parses the EHLO reply's extension lines (RFC 5321 §4.1.1.1): the
// first line is the greeting, each other line "KEYWORD [params]".
func outExt(r outResp) map[string]string {
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

// outNetReply reports a network, TLS or protocol error at a stage.
func outNetReply(stage policy.Stage, err error) policy.Reply {
	return policy.Reply{Stage: stage, Err: err}
}
