package inbound

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"net"
	"net/netip"
)

// clientIP returns the unmapped client address of a connection.
func clientIP(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// admit registers a new connection under the current generation and
// hands it to that generation's go-smtp server, or returns the 421 reply
// that refuses it (RFC 5321 §3.8: 421 at greeting means "not now"). The
// caps are enforced here, at accept time, where they belong: go-smtp's
// NewSession runs at EHLO and again after STARTTLS, so it cannot count
// connections, and a refused client is closed before go-smtp sees it.
func (s *Server) admit(raw net.Conn) string {
	ip := clientIP(raw.RemoteAddr())
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.gen
	switch {
	case s.draining:
		return "421 4.3.2 Service shutting down, try again later"
	case g.o.MaxConnections > 0 && len(s.conns) >= g.o.MaxConnections:
		s.log.Warn("connection refused: too busy", "client", ip, "limit", g.o.MaxConnections)
		return "421 4.3.2 too busy, try again later"
	case g.o.PerClientConnections > 0 && s.perIP[ip] >= g.o.PerClientConnections:
		s.log.Warn("connection refused: too many from client", "client", ip, "limit", g.o.PerClientConnections)
		return "421 4.7.0 Too many connections from your address, try again later"
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	c := &conn{srv: s, g: g, raw: raw, under: raw, ip: ip, trace: hex.EncodeToString(id[:])}
	if s.implicitTLS {
		c.under = tls.Server(raw, g.o.TLSConfig)
		c.isTLS = true
		c.implicit = true
	}
	s.conns[c] = struct{}{}
	s.perIP[ip]++
	g.conns++
	// Under s.mu, so that Reconfigure cannot retire g in between: a
	// connection admitted under g is served by g's go-smtp server.
	g.ln.push(c)
	return ""
}

// release forgets a closed connection, and its generation once it is
// retired and has no connection left.
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
	if c.g.conns--; c.g.conns == 0 && c.g != s.gen {
		delete(s.retired, c.g)
	}
}
