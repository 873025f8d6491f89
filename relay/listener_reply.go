package relay

import (
	"bytes"
	"strconv"
)

// Write sends go-smtp's replies through rewriteLocked, then closes the
// connection after a fatal reply (RFC 5321 §3.8: 421 closes the channel).
func (c *inConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	out, closeAfter := c.rewriteLocked(p)
	under := c.under
	c.mu.Unlock()
	if _, err := under.Write(out); err != nil {
		return 0, err
	}
	if closeAfter {
		c.Close()
	}
	return len(p), nil
}

// rewriteLocked watches the replies go-smtp writes: it remembers the last
// reply code (354 or not decides what follows DATA), names us in the
// HELO/EHLO reply (RFC 5321 §4.1.1.1), offers STARTTLS, and says whether
// the connection must close after a fatal reply (421, 521).
func (c *inConn) rewriteLocked(p []byte) (out []byte, closeAfter bool) {
	c.wbuf = append(c.wbuf, p...)
	for {
		i := bytes.IndexByte(c.wbuf, '\n')
		if i < 0 {
			break
		}
		line := c.wbuf[:i+1]
		switch {
		case bytes.HasPrefix(line, []byte("250-Hello ")):
			out = append(out, "250-"+c.srv.o.Hostname+" "...)
			out = append(out, line[4:]...)
			if c.srv.o.TLSConfig != nil && !c.isTLS {
				out = append(out, "250-STARTTLS\r\n"...)
			}
		case bytes.HasPrefix(line, []byte("250 2.0.0 Hello ")):
			out = append(out, "250 "+c.srv.o.Hostname+" "...)
			out = append(out, line[10:]...)
		case c.isTLS && bytes.Equal(line, []byte("502 5.5.1 TLS not supported\r\n")):
			// STARTTLS reaches go-smtp only when we did not run it
			// (inConn.Read): over TLS already, that is a bad sequence,
			// not an unknown command (RFC 3207 §4).
			out = append(out, "503 5.5.1 TLS already active\r\n"...)
		default:
			out = append(out, line...)
		}
		if len(line) >= 4 && (line[3] == ' ' || line[3] == '\r' || line[3] == '\n') {
			code, _ := strconv.Atoi(string(line[:3]))
			c.lastReply = code
			if code == 421 || code == 521 || c.closeAfterReply {
				closeAfter = true
			}
		}
		c.wbuf = c.wbuf[i+1:]
	}
	if len(c.wbuf) > 0 {
		out = append(out, c.wbuf...)
		c.wbuf = c.wbuf[:0]
	}
	return out, closeAfter
}
