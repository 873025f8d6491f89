// Package inbound is the server half of the relay: an SMTP server (go-smtp
// underneath) that applications submit to (access control, AUTH, inbound
// limits, strict DATA). It promises:
//
//   - never an open relay: a client outside Networks, or anyone when
//     RequireAuth is set, must AUTH (over TLS only) before MAIL;
//   - a message is acknowledged with 250 only after Store.Enqueue returned
//     without error, so durability is whatever the Store promises;
//   - strict DATA: a lone CR or LF anywhere on the wire is refused with a
//     fatal 521 and nothing is queued, and a smuggled command after a fake
//     end-of-data marker is never parsed as a command;
//   - every reply at the go-smtp boundary is a bare *smtp.SMTPError with a
//     generic text; details go to the log.
//
// A *Server is safe for concurrent use; Serve may be called for several
// listeners, which then share the connection caps. Reconfigure (a config
// reload) applies new options to the connections accepted after it; a
// session in flight finishes under the options it started with.
//
// Submit (submit.go) is the same acceptance path for a message that comes
// another way (the HTTP API, relay/httpapi): the same checks, replies
// and end of transaction (accept) as SMTP's DATA, for a user found by
// TokenUser.
package inbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/time/rate"

	"sluice/dsn"
)

// User may authenticate on the inbound side.
type User struct {
	Name, PasswordHash string // PasswordHash is bcrypt; "" = no SMTP AUTH
	// TokenHash is the SHA-256 of the user's HTTP API token (nil = none).
	TokenHash   []byte
	AllowedFrom []string
}

// Message is what the inbound side hands to the store. The stored
// message is Prepend followed by Content; CRLF line endings throughout.
type Message struct {
	From  string // "" = null sender
	Rcpts []string
	// Header is the header section as stored: our Received: first,
	// Message-ID: and Date: added when missing, with the empty line that
	// ends it when the message has a body. It is also the start of
	// Content.
	Header []byte
	// Content holds the message as received, with Header in place of
	// the header section that came: the body is streamed into it and
	// never held in memory whole.
	Content Spool
	// Prepend is set by the Checker: header fields that go before
	// Content (DKIM-Signature).
	Prepend    []byte
	ClientAddr netip.Addr
	Helo, User string
	SMTPUTF8   bool
	RequireTLS bool // REQUIRETLS given at MAIL (RFC 8689 §4.1)
	Received   time.Time
	// DSN and RcptDSN are the DSN parameters (RFC 3461) given at MAIL
	// and at each RCPT; RcptDSN is nil or parallel to Rcpts.
	DSN     dsn.Envelope
	RcptDSN []dsn.Rcpt
	// IdempotencyKey and Fingerprint: see Submission. Empty over SMTP.
	IdempotencyKey string
	Fingerprint    [32]byte
}

// Size is the size of the message as stored.
func (m *Message) Size() int64 { return int64(len(m.Prepend)) + m.Content.Len() }

// Spool keeps a message while it is received: small ones in memory, large
// ones in a file. Open reads back what was written (for DKIM), Discard
// drops it unless the Store took it.
type Spool interface {
	io.Writer
	Len() int64
	Open() (io.ReadCloser, error)
	Discard()
}

// Store takes accepted messages. Enqueue takes over m.Content, which came
// from NewSpool.
type Store interface {
	NewSpool() Spool
	Enqueue(ctx context.Context, m *Message) (id string, err error)
}

// Checker runs at the end of DATA (sender authentication, DKIM signing). It
// reads the message through m.Header and m.Content.Open, and may set
// m.Prepend. A returned *smtp.SMTPError is sent as is; any other error
// becomes 451 4.3.0.
type Checker interface {
	Check(ctx context.Context, m *Message) error
}

// Checks runs Checkers in order and stops at the first error: the
// daemon runs the auth pre-check (which signs) and then the content lint.
type Checks []Checker

// Check runs every Checker until one refuses.
func (cs Checks) Check(ctx context.Context, m *Message) error {
	for _, c := range cs {
		if err := c.Check(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// Options configures New. They are complete: the defaults
// live in the config layer (OptionsFrom); New refuses a
// zero size, count or timeout. Zero means "no limit" only where noted.
type Options struct {
	Hostname       string
	MaxMessageSize int64 // SIZE (RFC 1870)
	// InFlight bounds the sum, over the transactions open at once, of
	// their declared SIZE (else MaxMessageSize); beyond it MAIL gets 452
	// 4.3.1. Share one between the listeners of a daemon; nil = no bound.
	InFlight *InFlight
	// Space, when set, is asked at MAIL whether a message of the declared
	// SIZE (0 when none) can be stored now; an error refuses the MAIL
	// with 452 4.3.1 before the client uploads anything (RFC 1870 §6.1).
	// It must be cheap: it runs on every MAIL (queue.Space.Check is one
	// atomic load).
	Space                     func(size int64) error
	MaxRecipients             int // beyond: 452 4.5.3
	MaxLineLength             int
	ReadTimeout, WriteTimeout time.Duration
	IdleTimeout               time.Duration
	DataTimeout               time.Duration
	MaxConnections            int        // 0 = no limit
	PerClientConnections      int        // 0 = no limit
	PerClientRate             rate.Limit // messages per client IP; 0 = unlimited
	PerClientBurst            int        // at least 1 when PerClientRate is set
	// AuthFailures is the number of failed AUTH attempts per client IP
	// per 10 minutes; beyond it the client gets 421 and its next
	// attempts are refused before any password is checked. At least 1.
	AuthFailures         int
	Networks             []netip.Prefix // may relay without AUTH
	Users                []User
	TLSConfig            *tls.Config // nil: no STARTTLS, no AUTH
	RequireAuth          bool
	ImplicitTLS          bool
	AllowAddressLiterals bool
	Store                Store
	Check                Checker
	Suppressed           func(addr string) bool
	OnEnqueue            func(id string)
	// OnResult, when set, is told about every message accepted (250
	// after DATA, with the time from end of data to the reply) and every
	// refusal at MAIL, RCPT or DATA, with a short stable reason for
	// metrics labels. It must not block.
	OnResult func(accepted bool, reason string, latency time.Duration)
	Logger   *slog.Logger
	Now      func() time.Time
}

// Server is the inbound SMTP server.
type Server struct {
	log *slog.Logger
	// What Reconfigure may not change: they are the listener's kind.
	requireAuth, implicitTLS bool

	pathKey string // see rewritePath

	mu        sync.Mutex
	gen       *generation              // new connections are admitted under it
	retired   map[*generation]struct{} // earlier generations with connections still open
	conns     map[*conn]struct{}
	perIP     map[netip.Addr]int
	listeners map[net.Listener]struct{} // those Serve accepts on, closed by Shutdown
	serving   bool                      // Serve was called: generations run their go-smtp server
	draining  bool
}

// Failed AUTH attempts allowed per client IP: a burst of AuthFailures,
// refilled at that many per authFailWindow. Beyond that: 421 and close,
// which makes password guessing slow without locking out a user's typo.
const authFailWindow = 10 * time.Minute

// Validate refuses options New or Reconfigure would refuse; it changes
// nothing. Nothing is filled in: the defaults live in the config layer
// (OptionsFrom); a zero here would be a caller's mistake.
func (o *Options) Validate() error {
	if o.Hostname == "" {
		return errors.New("relay: inbound: Hostname is required")
	}
	if o.Store == nil {
		return errors.New("relay: inbound: Store is required")
	}
	if o.ImplicitTLS && o.TLSConfig == nil {
		return errors.New("relay: inbound: ImplicitTLS needs TLSConfig")
	}
	for _, u := range o.Users {
		if u.Name == "" || u.PasswordHash == "" && len(u.TokenHash) == 0 {
			return fmt.Errorf("relay: inbound: user %q needs a name and a password hash or an API token hash", u.Name)
		}
	}
	if o.MaxMessageSize <= 0 || o.MaxRecipients <= 0 || o.MaxLineLength <= 0 {
		return errors.New("relay: inbound: MaxMessageSize, MaxRecipients and MaxLineLength must be positive")
	}
	if o.ReadTimeout <= 0 || o.WriteTimeout <= 0 || o.IdleTimeout <= 0 || o.DataTimeout <= 0 {
		return errors.New("relay: inbound: ReadTimeout, WriteTimeout, IdleTimeout and DataTimeout must be positive")
	}
	if o.AuthFailures < 1 {
		return errors.New("relay: inbound: AuthFailures must be at least 1")
	}
	if o.MaxConnections < 0 || o.PerClientConnections < 0 || o.PerClientRate < 0 {
		return errors.New("relay: inbound: negative connection or rate limit")
	}
	if o.PerClientRate > 0 && o.PerClientBurst < 1 {
		return errors.New("relay: inbound: PerClientRate needs a PerClientBurst of at least 1")
	}
	return nil
}

// New checks o (complete: nothing is filled in but the clock and
// the logger) and builds the server.
func New(o Options) (*Server, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{
		log:         o.Logger,
		requireAuth: o.RequireAuth,
		implicitTLS: o.ImplicitTLS,
		retired:     map[*generation]struct{}{},
		conns:       make(map[*conn]struct{}),
		perIP:       make(map[netip.Addr]int),
		listeners:   map[net.Listener]struct{}{},
		pathKey:     newPathKey(),
	}
	s.gen = newGeneration(o, nil)
	return s, nil
}

// Serve accepts connections on l until Shutdown; it returns nil after
// Shutdown and the accept error otherwise. Each connection is admitted
// (connection caps) and handed to the current generation.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.listeners[l] = struct{}{}
	s.serving = true
	s.gen.start()
	s.mu.Unlock()
	var tempDelay time.Duration // as net/http and go-smtp: back off on EMFILE and the like
	for {
		raw, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			draining := s.draining
			s.mu.Unlock()
			if draining {
				return nil
			}
			if ne, ok := err.(net.Error); ok && ne.Temporary() {
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept error; retrying", "err", err, "in", tempDelay)
				time.Sleep(tempDelay)
				continue
			}
			return err
		}
		tempDelay = 0
		if reply := s.admit(raw); reply != "" {
			// Implicit TLS clients cannot read a plaintext reply: just close.
			if !s.implicitTLS {
				_ = raw.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = raw.Write([]byte(reply + "\r\n"))
			}
			_ = raw.Close()
		}
	}
}

// Shutdown stops accepting, answers sessions idle between commands with
// "421 4.3.2" and closes them, lets uploads in progress finish until ctx is
// done, then closes whatever is left. Sessions of every generation are
// waited for.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	gens := []*generation{s.gen}
	for g := range s.retired {
		gens = append(gens, g)
	}
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.drain()
	}
	var err error
	for _, g := range gens {
		g.ln.Close() // in case its go-smtp Serve has not registered it yet
		if e := g.smtp.Shutdown(ctx); e != nil && !errors.Is(e, smtp.ErrServerClosed) && err == nil {
			err = e
		}
	}
	if ctx.Err() != nil {
		s.mu.Lock()
		conns = conns[:0]
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
		return ctx.Err()
	}
	return err
}

// errorLog routes go-smtp's own log lines to slog.
type errorLog struct{ l *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.l.Debug("smtp server", "msg", fmt.Sprintf(format, v...))
}

func (e errorLog) Println(v ...any) { e.l.Debug("smtp server", "msg", fmt.Sprint(v...)) }
