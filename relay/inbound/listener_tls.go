package inbound

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"
)

// startTLSLocked answers STARTTLS and runs the handshake (RFC 3207 §4).
func (c *conn) startTLSLocked() error {
	_ = c.raw.SetWriteDeadline(time.Now().Add(c.g.o.WriteTimeout))
	if _, err := c.raw.Write([]byte("220 2.0.0 Ready to start TLS\r\n")); err != nil {
		return err
	}
	tc := tls.Server(c.raw, c.g.o.TLSConfig)
	ctx, cancel := context.WithTimeout(context.Background(), c.g.o.IdleTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.srv.log.Info("starttls handshake failed", "client", c.ip, "trace", c.trace, "err", err)
		return fmt.Errorf("relay: starttls: %w", err)
	}
	_ = c.raw.SetDeadline(time.Time{})
	c.under = tc
	c.isTLS = true
	c.tlsEpoch++
	c.needHelo = true
	c.in, c.held = nil, nil
	return nil
}

// handshake runs the implicit-TLS handshake (submissions, RFC 8314 §3)
// with a bound, before go-smtp writes its greeting.
func (c *conn) handshake() error {
	c.hsOnce.Do(func() {
		if !c.implicit {
			return
		}
		tc := c.under.(*tls.Conn)
		ctx, cancel := context.WithTimeout(context.Background(), c.g.o.IdleTimeout)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			c.hsErr = fmt.Errorf("relay: tls handshake: %w", err)
			c.srv.log.Info("tls handshake failed", "client", c.ip, "trace", c.trace, "err", err)
			c.Close()
		}
	})
	return c.hsErr
}
