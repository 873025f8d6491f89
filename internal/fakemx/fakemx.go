// Package fakemx is a scriptable SMTP receiver for tests and benchmarks.
//
// It behaves like a demanding receiving MX: it caps concurrent sessions and
// messages per time window with 421 replies, greylists (client IP, sender,
// recipient) triplets, goes through outage windows, shuts a penalty box
// on a sender that keeps going over its limits, caps messages per
// mailbox, and answers scripted replies at any stage. Every decision is
// Model's, a clock-free type that the virtual-time simulator
// (internal/sim) drives too; Server puts it on the wire. It counts everything it does so that a test or a
// bench script can compare what the relay did with what an ideal sender
// would have done.
//
// Promises: every exported method of *Server is safe to call concurrently,
// including while sessions are running; Stats and the other accessors return
// snapshots that the caller owns. Nothing is durable: the server keeps its
// state in memory and forgets it on Close. All timing goes through
// Options.Now, so tests drive windows and greylisting with a fake clock.
package fakemx

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sluice/internal/selfsigned"
	"sync"
	"time"
)

// Default reply texts. They are the texts big providers and postgrey send,
// so that the relay's classifier sees realistic input (see
// /work/shared/replies.md).
const (
	DefaultSessionsText = "421 4.7.0 Too many concurrent connections from your IP"
	DefaultRateText     = "421 4.7.0 Rate limit exceeded, try again later"
	DefaultGreylistText = "450 4.2.0 Greylisted, see http://postgrey.schweikert.ch/help/example.html"
	DefaultOutageText   = "421 4.3.2 Service not available"
	DefaultPenaltyText  = "421 4.7.0 Temporarily deferred due to unexpected volume or user complaints"
	DefaultMailboxText  = "450 4.2.1 The recipient's mailbox is receiving mail too fast, slow down"
)

// Options configures a Server. The zero value of every limit means
// "no limit".
type Options struct {
	Addr     string // listen address, e.g. "127.0.0.1:0"
	Hostname string // banner and EHLO name; default "fakemx.test"

	MaxSessions   int           // K: concurrent sessions beyond K get SessionsText at greeting
	SessionsText  string        // default DefaultSessionsText
	RatePerWindow int           // R: accepted MAIL FROM per Window; beyond it RateText at MAIL and the session closes
	RateText      string        // default DefaultRateText
	Window        time.Duration // fixed windows counted from server start; default 1s

	// Greylist refuses RCPT for a (client IP, sender, recipient) triplet
	// until Greylist has passed since the first attempt of that triplet.
	Greylist time.Duration
	// GreylistText may contain one %d, filled with the whole seconds
	// (rounded up) that remain before the triplet is let through.
	GreylistText string

	Outages  []Window // OutageText at greeting during each window
	Schedule []Limits // from At on, use these MaxSessions/RatePerWindow
	Script   []Rule   // scripted replies, checked before the built-in behaviours

	OutageText string // default DefaultOutageText

	// Penalty shuts the box on a sender that goes over the limits too
	// often: PenaltyText at greeting and MAIL while it is shut.
	Penalty     PenaltyBox
	PenaltyText string // default DefaultPenaltyText
	// MailboxRate caps the recipients accepted per mailbox per
	// MailboxWindow (fixed windows from start; default Window): beyond
	// it MailboxText at RCPT. 0 = no cap.
	MailboxRate   int
	MailboxWindow time.Duration
	MailboxText   string // default DefaultMailboxText

	STARTTLS    bool          // offer STARTTLS with a self-signed certificate made at Start
	TLSConfig   *tls.Config   // with STARTTLS: serve this config (certificate) instead
	REQUIRETLS  bool          // offer REQUIRETLS (RFC 8689) after STARTTLS, and accept the MAIL parameter
	NoSMTPUTF8  bool          // do not offer SMTPUTF8 (RFC 6531), like many receivers still
	No8BitMIME  bool          // do not offer 8BITMIME (RFC 6152): a "7-bit" peer
	KeepBodies  bool          // keep raw (dot-unstuffed) bodies for Received
	IdleTimeout time.Duration // per command read; default 60s

	Now    func() time.Time // nil = time.Now
	Logger *slog.Logger     // nil = slog.Default()
}

// Window is a span of time relative to server start: [Start, End).
type Window struct{ Start, End time.Duration }

// PenaltyBox blocks every session for Block once the sender has been
// refused by a limit (sessions, rate, mailbox) Refusals times within
// Within, as provider blocklists that trip on a burst of refusals do; a
// connection or MAIL during the block keeps it shut at least Extend
// longer (a sender that keeps hammering stays out). Refusals 0 = none.
type PenaltyBox struct {
	Refusals      int
	Within, Block time.Duration
	Extend        time.Duration
}

// Limits replaces the session and rate limits from At (relative to server
// start) on, until the next Limits entry. Zero means no limit.
type Limits struct {
	At            time.Duration
	MaxSessions   int
	RatePerWindow int
}

// Rule is a scripted reply. Stage is one of greeting, ehlo, mail, rcpt,
// data, data-end. Match is a substring of the subject of the stage ("" = any):
// the client IP at greeting, the EHLO name at ehlo, the sender at mail, the
// recipient at rcpt, and the sender or any accepted recipient at data-end.
// Reply is a full reply line ("421 4.7.28 ..."); lines may be joined with
// "\n" for a multi-line reply. Times limits the rule to its first N matches
// (0 = always). A 421 reply closes the session, as RFC 5321 §3.8 requires.
//
// Stage data replaces the 354 to DATA: any other reply means no body is
// read. Extra, when set, is an unrequested reply sent after Reply, the
// way a broken or hostile receiver desynchronises the reply stream: in
// the same write (one TCP segment), or with Later in a second write once
// Reply is flushed (a later segment).
type Rule struct {
	Stage string
	Match string
	Reply string
	Times int
	Extra string
	Later bool
}

// Stages that a Rule may name.
const (
	StageGreeting = "greeting"
	StageEHLO     = "ehlo"
	StageMail     = "mail"
	StageRcpt     = "rcpt"
	StageData     = "data"
	StageDataEnd  = "data-end"
)

// Server is a running fake MX.
type Server struct {
	o       Options
	m       *Model // every decision and count
	now     func() time.Time
	log     *slog.Logger
	ln      net.Listener
	tlsConf *tls.Config

	wg sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	bodies [][]byte
}

// Start validates o, listens on o.Addr and serves in the background.
func Start(o Options) (*Server, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Hostname == "" {
		o.Hostname = "fakemx.test"
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 60 * time.Second
	}
	s := &Server{
		o:     o,
		now:   o.Now,
		log:   o.Logger,
		conns: map[net.Conn]struct{}{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	var err error
	if s.m, err = NewModel(o, s.now()); err != nil {
		return nil, err
	}
	if o.STARTTLS && o.TLSConfig != nil {
		s.tlsConf = o.TLSConfig
	} else if o.STARTTLS {
		// The certificate is checked by real TLS stacks against the real
		// time, so it is dated by the wall clock, not by Options.Now.
		// Receiving MXs on the Internet often present certificates that
		// do not verify, so an opportunistic sender must accept this one.
		// Dated by the wall clock: real TLS clients check real time.
		cert, err := selfsigned.New(time.Now(), o.Hostname)
		if err == nil {
			s.tlsConf = cert.Config
		}
		if err != nil {
			return nil, fmt.Errorf("fakemx: %w", err)
		}
	}
	s.ln, err = net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("fakemx: listen: %w", err)
	}
	s.wg.Add(1)
	go s.serve()
	s.log.Info("fakemx listening", "addr", s.ln.Addr().String())
	return s, nil
}

// Addr is the address the server listens on, e.g. "127.0.0.1:40211".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops listening, closes every open session and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.ln.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or similar: back off briefly rather
			// than spin, as net/http does.
			s.log.Warn("fakemx accept", "err", err)
			time.Sleep(5 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			newSession(s, c).run()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}
