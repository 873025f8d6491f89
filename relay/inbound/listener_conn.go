package inbound

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// conn is the net.Conn go-smtp talks to. It sits above TLS (it runs
// STARTTLS itself) so that it always sees the plaintext SMTP stream, and it
// owns everything go-smtp does not: the wire view of DATA (wire), a true
// idle timeout, the DATA upload bound, 421 on drain, closing after a fatal
// reply, and the STARTTLS exchange (RFC 3207).
type conn struct {
	srv   *Server
	g     *generation // the options it was admitted under, until it closes
	raw   net.Conn
	ip    netip.Addr
	trace string

	hsOnce sync.Once
	hsErr  error

	closeOnce sync.Once

	mu       sync.Mutex
	under    net.Conn // raw, or a *tls.Conn over raw
	isTLS    bool
	implicit bool

	wire    wire
	in      []byte // read from the network, not yet scanned
	held    []byte // scanned, held back (an incomplete command line)
	out     []byte // ready for go-smtp
	barrier lineEvent
	rbuf    []byte

	wbuf            []byte
	lastReply       int
	closeAfterReply bool

	tlsEpoch int
	needHelo bool // after STARTTLS the client must say EHLO again (RFC 3207 §4.2)
	ehlo     bool

	cmdDeadline  time.Time // what go-smtp asked for (per command)
	dataDeadline time.Time
	reading      bool // blocked in a network read between commands
	draining     bool
	closed       bool
}

// holdPartial is the least we hold back of an incomplete command line,
// so that a STARTTLS line is never half-delivered to go-smtp and a
// HELO/EHLO, MAIL or RCPT line can be checked or rewritten whole.
// Server.lineHold raises it to go-smtp's line limit: a longer line never
// reaches a command handler.
const holdPartial = 512

func (c *conn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if len(c.out) > 0 {
			n := copy(p, c.out)
			c.out = c.out[n:]
			return n, nil
		}
		if c.closed {
			return 0, net.ErrClosed
		}
		switch c.barrier {
		case evData:
			c.barrier = evNone
			if c.lastReply == 354 {
				c.wire.startData()
				c.dataDeadline = time.Now().Add(c.g.o.DataTimeout)
			}
			continue
		case evStartTLS:
			c.barrier = evNone
			if err := c.startTLSLocked(); err != nil {
				c.closeLocked()
				return 0, err
			}
			continue
		case evHTTP:
			return 0, fmt.Errorf("relay: http request on smtp port: %w", net.ErrClosed)
		}
		if len(c.in) == 0 {
			if err := c.netReadLocked(); err != nil {
				return 0, err
			}
			continue
		}
		n, ev, lineLen := c.wire.feed(c.in)
		c.held = append(c.held, c.in[:n]...)
		c.in = c.in[n:]
		switch ev {
		case evStartTLS:
			if c.g.o.TLSConfig != nil && !c.isTLS && lineLen <= len(c.held) {
				c.out = c.held[:len(c.held)-lineLen]
				c.held = nil
				// RFC 3207 §4.2 / CVE-2011-0411: anything the client
				// pipelined after STARTTLS is discarded.
				c.in = nil
				c.barrier = evStartTLS
				continue
			}
		case evData:
			c.barrier = evData
		case evHTTP:
			c.barrier = evHTTP
			c.closeAfterReply = true
			c.srv.log.Info("http request on smtp port", "client", c.ip, "trace", c.trace)
		case evMail, evRcpt:
			// A line over go-smtp's limit goes as it is, for go-smtp
			// to refuse whole: rewritten it might shrink below it.
			if lineLen <= len(c.held) && lineLen <= c.g.o.MaxLineLength {
				keep := len(c.held) - lineLen
				line, err := c.srv.rewritePath(c.held[keep:], ev == evMail)
				if err != nil {
					c.srv.log.Info("bad envelope path", "client", c.ip, "trace", c.trace, "err", err)
				}
				c.held = append(c.held[:keep:keep], line...)
			}
		case evHelo, evEhlo:
			if lineLen > len(c.held) {
				// Longer than we hold, hence than go-smtp's line
				// limit: it refuses the line itself.
				break
			}
			line := c.held[len(c.held)-lineLen:]
			if name, ok := heloName(line); ok && !heloNameOK(name) {
				// Refused here so that it is never stored nor
				// printed: go-smtp sees the bare verb and answers
				// 501 ("Syntax: EHLO hostname" in listener_reply.go).
				c.srv.log.Info("bad helo name refused", "client", c.ip, "trace", c.trace, "helo", clipForLog(name))
				c.held = append(c.held[:len(c.held)-lineLen], line[:4]...)
				c.held = append(c.held, "\r\n"...)
				break
			}
			c.needHelo = false
			c.ehlo = ev == evEhlo
		case evNone:
			if c.wire.mode == modeCommand && c.wire.lineLen > 0 &&
				c.wire.lineLen <= len(c.held) && c.wire.lineLen <= c.g.lineHold {
				keep := len(c.held) - c.wire.lineLen
				c.out = c.held[:keep]
				c.held = append([]byte(nil), c.held[keep:]...)
				continue
			}
		}
		c.out = c.held
		c.held = nil
	}
}

// netReadLocked reads more bytes from the network into c.in. c.mu is held
// on entry and exit, released while blocked.
func (c *conn) netReadLocked() error {
	idle := c.wire.idle() && len(c.held) == 0
	if c.draining && idle {
		c.fatalLocked("421 4.3.2 Service shutting down, try again later")
		return fmt.Errorf("relay: draining: %w", net.ErrClosed)
	}
	o := &c.g.o
	dl := time.Now().Add(o.IdleTimeout)
	if c.wire.mode == modeData {
		// go-smtp's per-command ReadTimeout would bound the whole upload;
		// DATA gets DataTimeout instead.
		if c.dataDeadline.Before(dl) {
			dl = c.dataDeadline
		}
	} else if !c.cmdDeadline.IsZero() && c.cmdDeadline.Before(dl) {
		dl = c.cmdDeadline
	}
	under := c.under
	if err := under.SetReadDeadline(dl); err != nil {
		return err
	}
	c.reading = idle
	if c.rbuf == nil {
		c.rbuf = make([]byte, 4096)
	}
	buf := c.rbuf
	c.mu.Unlock()
	n, err := under.Read(buf)
	c.mu.Lock()
	c.reading = false
	if n > 0 {
		c.in = append(c.in, buf[:n]...)
		return nil
	}
	if err == nil {
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !c.closed {
		switch {
		case c.draining:
			c.fatalLocked("421 4.3.2 Service shutting down, try again later")
		case c.wire.mode == modeData:
			c.srv.log.Info("data timeout", "client", c.ip, "trace", c.trace)
			c.fatalLocked("421 4.4.2 Data timeout, closing connection")
		default:
			c.srv.log.Info("idle timeout", "client", c.ip, "trace", c.trace)
			c.fatalLocked("421 4.4.2 idle timeout")
		}
		return fmt.Errorf("relay: timeout: %w", net.ErrClosed)
	}
	return err
}

// fatalLocked writes a reply of our own and closes the connection.
func (c *conn) fatalLocked(reply string) {
	if !c.closed {
		_ = c.under.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.under.Write([]byte(reply + "\r\n"))
	}
	c.closeLocked()
}

// Close closes the connection once and releases its slot in the caps.
func (c *conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeLocked()
}

func (c *conn) closeLocked() error {
	var err error
	c.closeOnce.Do(func() {
		c.closed = true
		_ = c.raw.SetWriteDeadline(time.Now().Add(time.Second))
		err = c.under.Close()
		c.srv.release(c)
	})
	return err
}

// drain is called by Shutdown: an idle session gets 421 now, a busy one at
// its next command boundary (netReadLocked).
func (c *conn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	if c.reading {
		_ = c.under.SetReadDeadline(time.Now())
	}
}

// takeBare reports (and forgets) whether the last DATA carried a lone CR or
// LF on the wire.
func (c *conn) takeBare() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.wire.bare
	c.wire.bare = false
	return b
}

func (c *conn) setCloseAfterReply() {
	c.mu.Lock()
	c.closeAfterReply = true
	c.mu.Unlock()
}

// tlsState returns whether the session runs over TLS, its STARTTLS epoch,
// and whether a fresh EHLO is still owed after STARTTLS.
func (c *conn) tlsState() (isTLS bool, epoch int, needHelo, ehlo bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.isTLS, c.tlsEpoch, c.needHelo, c.ehlo
}

func (c *conn) LocalAddr() net.Addr  { return c.raw.LocalAddr() }
func (c *conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

func (c *conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline records go-smtp's per-command deadline; netReadLocked
// combines it with the idle and DATA bounds.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.cmdDeadline = t
	c.mu.Unlock()
	return nil
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	under := c.under
	c.mu.Unlock()
	return under.SetWriteDeadline(t)
}
