package outbound

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// errBareCRLF: the body has a CR not followed by LF or an LF not
// preceded by CR. Go's dot writer, and many servers, pass them through;
// they are a smuggling vector (RFC 5321 §2.3.8 allows CR and LF only as
// CRLF). The inbound side refuses them already: this is defence in
// depth, found while streaming, so the connection is dropped before the
// final dot and the receiver discards the transaction (RFC 5321 §4.1.1.4:
// no data is delivered without the end-of-data indication).
var errBareCRLF = errors.New("relay: message contains a bare CR or LF")

// errBodyRead: the stored body could not be read while it was sent.
// The connection is dropped before the final dot; it is our fault, not
// the receiver's.
var errBodyRead = errors.New("relay: reading the queued message failed")

// bodyChunk is the read size of the body copy.
const bodyChunk = 32 << 10

// dotWriter writes a message body in DATA form (RFC 5321 §4.5.2): a
// line starting with "." gets another one, and the body is checked for
// bare CR and LF as it passes, so it never has to be in memory whole. A CR
// is held back until the next byte shows it starts a CRLF: a lone CR
// never reaches the wire.
type dotWriter struct {
	w   *bufio.Writer
	bol bool // at the beginning of a line
	cr  bool // a CR is held back
}

func newDotWriter(w *bufio.Writer) *dotWriter { return &dotWriter{w: w, bol: true} }

// write sends p. It fails with errBareCRLF, having sent nothing of the
// offending line end, or with the writer's error.
func (d *dotWriter) write(p []byte) error {
	for len(p) > 0 {
		if d.cr {
			if p[0] != '\n' {
				return errBareCRLF
			}
			if _, err := d.w.WriteString("\r\n"); err != nil {
				return err
			}
			d.cr, d.bol, p = false, true, p[1:]
			continue
		}
		if d.bol && p[0] == '.' {
			if err := d.w.WriteByte('.'); err != nil {
				return err
			}
		}
		d.bol = false
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			_, err := d.w.Write(p)
			return err
		}
		if p[i] == '\n' {
			return errBareCRLF
		}
		if _, err := d.w.Write(p[:i]); err != nil {
			return err
		}
		d.cr, p = true, p[i+1:]
	}
	return nil
}

// end terminates the body: a final CRLF if the last line lacks one, then
// the end-of-data line, and flushes.
func (d *dotWriter) end() error {
	if d.cr {
		return errBareCRLF
	}
	if !d.bol {
		if _, err := d.w.WriteString("\r\n"); err != nil {
			return err
		}
	}
	if _, err := d.w.WriteString(".\r\n"); err != nil {
		return err
	}
	return d.w.Flush()
}

// copyBody streams r through a dot writer onto w, using buf. A read
// error is wrapped in errBodyRead.
func copyBody(w *bufio.Writer, r io.Reader, buf []byte) error {
	d := newDotWriter(w)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := d.write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return d.end()
		}
		if err != nil {
			return errors.Join(errBodyRead, err)
		}
	}
}
