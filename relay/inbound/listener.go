package inbound

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"net"
	"net/netip"
	"time"
)

// listener enforces the connection caps at accept time, where they
// belong: go-smtp's NewSession runs at EHLO and again after STARTTLS, so it
// cannot count connections. A refused client gets its 421 written directly
// and is closed before go-smtp ever sees it.
type listener struct {
	net.Listener
	srv *Server
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c, reply := l.srv.admit(raw)
		if c != nil {
			return c, nil
		}
		// Implicit TLS clients cannot read a plaintext reply: just close.
		if !l.srv.o.ImplicitTLS {
			_ = raw.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = raw.Write([]byte(reply + "\r\n"))
		}
		_ = raw.Close()
	}
}

// clientIP returns the unmapped client address of a connection.
func clientIP(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// admit registers a new connection, or returns the 421 reply that refuses
// it (RFC 5321 §3.8: 421 at greeting means "not now").
func (s *Server) admit(raw net.Conn) (*conn, string) {
	ip := clientIP(raw.RemoteAddr())
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.draining:
		return nil, "421 4.3.2 Service shutting down, try again later"
	case s.o.MaxConnections > 0 && len(s.conns) >= s.o.MaxConnections:
		s.log.Warn("connection refused: too busy", "client", ip, "limit", s.o.MaxConnections)
		return nil, "421 4.3.2 too busy, try again later"
	case s.o.PerClientConnections > 0 && s.perIP[ip] >= s.o.PerClientConnections:
		s.log.Warn("connection refused: too many from client", "client", ip, "limit", s.o.PerClientConnections)
		return nil, "421 4.7.0 Too many connections from your address, try again later"
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	c := &conn{srv: s, raw: raw, under: raw, ip: ip, trace: hex.EncodeToString(id[:])}
	if s.o.ImplicitTLS {
		c.under = tls.Server(raw, s.o.TLSConfig)
		c.isTLS = true
		c.implicit = true
	}
	s.conns[c] = struct{}{}
	s.perIP[ip]++
	return c, ""
}

// release forgets a closed connection.
func (s *Server) release(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return
	}
	delete(s.conns, c)
	if s.perIP[c.ip]--; s.perIP[c.ip] <= 0 {
		delete(s.perIP, c.ip)
	}
}
