package inbound

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/time/rate"
)

// generation is one configuration of a Server: the options a connection
// is admitted under and keeps until it closes (a reload never changes a
// session in flight), with the go-smtp server that runs its sessions.
// go-smtp reads its limits (SIZE, recipients, line length, timeouts) from
// its server at every command, so each generation has a server of its
// own; the connection caps, the per-client counts and the in-flight
// budget are the Server's, shared by every generation.
type generation struct {
	o        Options
	smtp     *smtp.Server
	ln       *handoff  // the connections admitted under this generation
	lineHold int       // see holdPartial
	msgRate  *limiters // per client IP, messages; nil = no limit
	authFail *limiters // per client IP, failed AUTH attempts

	startOnce sync.Once
	conns     int // open connections admitted under it (Server.mu)
}

// newGeneration builds a generation from checked options. The per-client
// rate buckets of prev carry over when their limits did not change, so a
// reload does not hand every client a fresh budget.
func newGeneration(o Options, prev *generation) *generation {
	g := &generation{
		o:        o,
		ln:       newHandoff(),
		lineHold: max(holdPartial, o.MaxLineLength+8),
	}
	if prev != nil && prev.o.AuthFailures == o.AuthFailures {
		g.authFail = prev.authFail
	} else {
		g.authFail = newLimiters(rate.Every(authFailWindow/time.Duration(o.AuthFailures)), o.AuthFailures, o.Now)
	}
	if o.PerClientRate > 0 {
		if prev != nil && prev.msgRate != nil && prev.o.PerClientRate == o.PerClientRate && prev.o.PerClientBurst == o.PerClientBurst {
			g.msgRate = prev.msgRate
		} else {
			g.msgRate = newLimiters(o.PerClientRate, o.PerClientBurst, o.Now)
		}
	}
	srv := smtp.NewServer(backend{})
	srv.Domain = o.Hostname
	srv.MaxMessageBytes = o.MaxMessageSize
	srv.MaxRecipients = o.MaxRecipients
	srv.MaxLineLength = o.MaxLineLength
	srv.ReadTimeout = o.ReadTimeout
	srv.WriteTimeout = o.WriteTimeout
	srv.EnableSMTPUTF8 = true
	// DSN (RFC 3461): NOTIFY, ORCPT, RET and ENVID are kept with the
	// message and honoured by the DSNs the relay sends, or passed on.
	srv.EnableDSN = true
	// REQUIRETLS (RFC 8689): go-smtp parses the MAIL parameter; since it
	// never sees our TLS, rewriteLocked offers the extension over TLS and
	// mail refuses the parameter without it.
	srv.EnableREQUIRETLS = true
	// TLS is run by conn (it must see the plaintext stream), so go-smtp
	// never sees a *tls.Conn; our session enforces "AUTH only over TLS".
	srv.TLSConfig = nil
	srv.AllowInsecureAuth = true
	srv.ErrorLog = errorLog{o.Logger}
	g.smtp = srv
	return g
}

// start runs the generation's go-smtp server on its handoff, once.
func (g *generation) start() {
	g.startOnce.Do(func() {
		go func() { _ = g.smtp.Serve(g.ln) }() // returns when ln is closed
	})
}

// Reconfigure applies new options to a running server (a config
// reload): connections accepted from now on run under them, while the
// sessions in flight finish under the options they started with. o is
// checked as New checks it and nothing changes on error. RequireAuth and
// ImplicitTLS are the listener's kind and cannot change; Now and Logger,
// when nil, are the current ones. Share one InFlight between the old and
// new options (and SetMax it) so that the bound holds across the change.
func (s *Server) Reconfigure(o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if o.RequireAuth != s.requireAuth || o.ImplicitTLS != s.implicitTLS {
		return errors.New("relay: inbound: RequireAuth and ImplicitTLS are the listener's kind: they cannot change")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return nil
	}
	prev := s.gen
	if o.Now == nil {
		o.Now = prev.o.Now
	}
	if o.Logger == nil {
		o.Logger = prev.o.Logger
	}
	s.gen = newGeneration(o, prev)
	if s.serving {
		s.gen.start()
	}
	// The old go-smtp server accepts nothing more; its sessions go on
	// until they close (release forgets it then).
	prev.ln.Close()
	if prev.conns > 0 {
		s.retired[prev] = struct{}{}
	}
	return nil
}

// handoff is the net.Listener a generation's go-smtp server accepts
// from: admit pushes the connections admitted under the generation. Push
// never blocks (admit holds Server.mu); Accept returns what was pushed,
// even after Close, before it reports the listener closed.
type handoff struct {
	mu     sync.Mutex
	q      []net.Conn
	closed bool
	wake   chan struct{} // capacity 1: something was pushed, or Close
}

func newHandoff() *handoff { return &handoff{wake: make(chan struct{}, 1)} }

func (h *handoff) push(c net.Conn) {
	h.mu.Lock()
	h.q = append(h.q, c)
	h.mu.Unlock()
	h.signal()
}

func (h *handoff) signal() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *handoff) Accept() (net.Conn, error) {
	for {
		h.mu.Lock()
		if len(h.q) > 0 {
			c := h.q[0]
			h.q[0] = nil
			h.q = h.q[1:]
			more := len(h.q) > 0
			h.mu.Unlock()
			if more {
				h.signal()
			}
			return c, nil
		}
		closed := h.closed
		h.mu.Unlock()
		if closed {
			return nil, net.ErrClosed
		}
		<-h.wake
	}
}

func (h *handoff) Close() error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.signal()
	return nil
}

func (h *handoff) Addr() net.Addr { return handoffAddr{} }

type handoffAddr struct{}

func (handoffAddr) Network() string { return "handoff" }
func (handoffAddr) String() string  { return "handoff" }
