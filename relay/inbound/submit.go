package inbound

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/netip"

	"github.com/emersion/go-smtp"

	"sluice/mailbox"
	"sluice/queue"
)

// Submissions that do not come over SMTP (the HTTP API, relay/httpapi)
// go through the same checks, in the same order, with the same replies
// as an SMTP transaction: the sender and its user's allowed_from, the
// per-client rate, the free space and the in-flight budget, every
// recipient (syntax, literals, suppression), the size, the loop count,
// then accept, which SMTP's end of DATA runs too: the auth pre-check and
// DKIM signing (Checker), the durable Enqueue, the log line, the
// scheduler's kick and the result hook. Refusals are the SMTP sentinels
// (*smtp.SMTPError), which the caller maps onto its own protocol.

// Submission is one message handed to Submit.
type Submission struct {
	From   string   // envelope sender; "" = the null sender
	Rcpts  []string // envelope recipients
	User   string   // the authenticated user (one of Options.Users)
	Client netip.Addr
	// Protocol is the Received: field's "with" keyword (RFC 5321 §4.4):
	// "HTTP" or "HTTPS" for the HTTP API.
	Protocol string
	// Message is the RFC 5322 message with CRLF line endings.
	Message []byte
	// IdempotencyKey, when set, makes a retry with the same key (for the
	// same user) return the first message's ID and queue nothing; the
	// key is stored with the message, in its transaction. Fingerprint
	// tells a retry from a different request reusing the key.
	IdempotencyKey string
	Fingerprint    [32]byte
}

// Receipt is what Submit returns for a message taken.
type Receipt struct {
	ID string
	// Replayed: the idempotency key was seen; ID is the message queued
	// the first time and nothing was queued now.
	Replayed bool
}

// ErrIdempotencyMismatch: the submission's idempotency key was used by
// this user for a different request.
var ErrIdempotencyMismatch = queue.ErrIdempotencyMismatch

// Refusals of a Submission that SMTP expresses by the command sequence.
var (
	errNoRcpts  = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "No valid recipients"}
	errNotAUser = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
)

// idempotentStore is a Store that can look an idempotency key up before
// the message is checked and signed (a retry then costs one read). The
// Store's Enqueue checks the key again in its transaction.
type idempotentStore interface {
	Idempotent(key string, fp [32]byte) (id string, err error)
}

// TokenUser returns the user whose API token is token (RFC 6750 bearer
// token, compared by its SHA-256 in constant time with every user's, so
// that neither the timing nor the position of a match tells anything).
func (s *Server) TokenUser(token string) (User, bool) {
	g := s.current()
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range g.o.Users {
		h := g.o.Users[i].TokenHash
		if len(h) == sha256.Size && subtle.ConstantTimeCompare(sum[:], h) == 1 {
			found = i
		}
	}
	if found < 0 || token == "" {
		return User{}, false
	}
	return g.o.Users[found], true
}

// MaxMessageSize is the size limit in force (limits.max_message_size).
func (s *Server) MaxMessageSize() int64 { return s.current().o.MaxMessageSize }

// Reserve takes n bytes of the in-flight budget for a submission about to
// be read, after checking the free space for it, as MAIL does with its
// SIZE: the caller holds the message in memory until release.
func (s *Server) Reserve(n int64) (release func(), err error) {
	g := s.current()
	if g.o.Space != nil {
		if err := g.o.Space(n); err != nil {
			s.log.Warn("submission deferred: no space for new mail", "size", n, "err", err)
			return nil, errNoSpace
		}
	}
	if !g.o.InFlight.reserve(n) {
		s.log.Warn("submission deferred: limits.max_inflight_bytes reached", "size", n,
			"in_flight", g.o.InFlight.Used(), "max", g.o.InFlight.Max())
		return nil, errInFlight
	}
	return func() { g.o.InFlight.release(n) }, nil
}

func (s *Server) current() *generation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// Submit checks sub as an SMTP transaction from an authenticated user
// would be checked and queues it. An error is an *smtp.SMTPError (its
// code says permanent or temporary) or ErrIdempotencyMismatch.
func (s *Server) Submit(ctx context.Context, sub *Submission) (Receipt, error) {
	g := s.current()
	start := g.o.Now()
	rc, err := s.submit(ctx, g, sub)
	if !rc.Replayed {
		g.report("data", err, g.o.Now().Sub(start))
	}
	return rc, err
}

func (s *Server) submit(ctx context.Context, g *generation, sub *Submission) (Receipt, error) {
	tid := randomID()[:16]
	who := []any{"client", sub.Client, "trace", tid, "via", sub.Protocol}
	var user *User
	for i := range g.o.Users {
		if g.o.Users[i].Name == sub.User {
			user = &g.o.Users[i]
		}
	}
	if user == nil {
		return Receipt{}, errNotAUser // the user left the config since the token was checked
	}
	utf8 := !isASCII(sub.From)
	for _, r := range sub.Rcpts {
		utf8 = utf8 || !isASCII(r)
	}
	from, domain := "", ""
	if sub.From != "" {
		m, err := mailbox.Parse(sub.From)
		if err != nil {
			return Receipt{}, errBadSender
		}
		if m.IsLiteral() && !g.o.AllowAddressLiterals {
			return Receipt{}, errLiteral
		}
		from, domain = m.String(), m.Domain
	}
	if !senderAllowed(user, from, domain) {
		s.log.Info("sender domain not allowed", append(who, "user", user.Name, "domain", domain)...)
		return Receipt{}, errFromDomain
	}
	if g.msgRate != nil && !g.msgRate.allow(sub.Client) {
		s.log.Warn("message rate limited", who...)
		return Receipt{}, errRate
	}
	if len(sub.Rcpts) == 0 {
		return Receipt{}, errNoRcpts
	}
	if len(sub.Rcpts) > g.o.MaxRecipients {
		return Receipt{}, errTooManyRcpts
	}
	rcpts := make([]string, 0, len(sub.Rcpts))
	for _, r := range sub.Rcpts {
		m, err := mailbox.Parse(r)
		if err != nil {
			return Receipt{}, errBadAddr
		}
		canon, err := g.checkRcpt(m, utf8)
		if err != nil {
			return Receipt{}, err
		}
		rcpts = append(rcpts, canon)
	}
	if int64(len(sub.Message)) > g.o.MaxMessageSize {
		return Receipt{}, errTooBig
	}
	scan := &bareScan{}
	_, _ = scan.Write(sub.Message)
	if scan.found() {
		return Receipt{}, errBareLF
	}
	// One namespace of keys per user: another user's key never matches.
	idemKey := ""
	if sub.IdempotencyKey != "" {
		idemKey = user.Name + "\x00" + sub.IdempotencyKey
	}
	if idemKey != "" {
		if is, ok := g.o.Store.(idempotentStore); ok {
			id, err := is.Idempotent(idemKey, sub.Fingerprint)
			switch {
			case err == nil:
				s.log.Info("idempotent retry: already queued", append(who, "id", id, "user", user.Name)...)
				return Receipt{ID: id, Replayed: true}, nil
			case errors.Is(err, queue.ErrIdempotencyMismatch):
				return Receipt{}, err
			}
		}
	}
	hdr, _, ended, err := readHeader(bytes.NewReader(sub.Message))
	if err != nil {
		return Receipt{}, errHeaderTooBig
	}
	// The body is the rest of the submission, not readHeader's rest,
	// which holds only what its first reads took past the header section.
	rest := sub.Message[len(hdr):]
	now := g.o.Now()
	m := &Message{
		From: from, Rcpts: rcpts, ClientAddr: sub.Client, User: user.Name, SMTPUTF8: utf8, Received: now,
		IdempotencyKey: idemKey, Fingerprint: sub.Fingerprint,
	}
	tc := trace{Client: sub.Client, Hostname: g.o.Hostname, Protocol: sub.Protocol, ID: tid, Date: now}
	if len(rcpts) == 1 {
		tc.Rcpt = rcpts[0]
	}
	var hops int
	m.Header, hops = prepareHeader(hdr, ended, tc)
	if hops > maxReceived {
		s.log.Warn("mail loop", append(who, "received", hops)...)
		return Receipt{}, errLoop
	}
	sp := g.o.Store.NewSpool()
	defer sp.Discard()
	m.Content = sp
	if _, err := sp.Write(m.Header); err != nil {
		return Receipt{}, storeReply(err)
	}
	if _, err := sp.Write(rest); err != nil {
		return Receipt{}, storeReply(err)
	}
	id, err := g.accept(ctx, s, m, who)
	var re *queue.ReplayError
	if errors.As(err, &re) {
		return Receipt{ID: re.ID, Replayed: true}, nil
	}
	if errors.Is(err, queue.ErrIdempotencyMismatch) {
		return Receipt{}, err
	}
	return Receipt{ID: id}, err
}

// accept runs the end of a transaction, shared by SMTP's DATA and
// Submit: the Checker (sender authentication, DKIM signing), the durable
// Enqueue, the log line and the scheduler's kick. who are the log
// attributes naming the client. It returns the queue ID, or the reply:
// an *smtp.SMTPError, or the Store's *queue.ReplayError and
// queue.ErrIdempotencyMismatch as they are.
func (g *generation) accept(ctx context.Context, s *Server, m *Message, who []any) (string, error) {
	if g.o.Check != nil {
		if err := g.o.Check.Check(ctx, m); err != nil {
			var se *smtp.SMTPError
			if errors.As(err, &se) {
				return "", &smtp.SMTPError{Code: se.Code, EnhancedCode: se.EnhancedCode, Message: se.Message}
			}
			s.log.Error("check failed", append(who, "err", err)...)
			return "", errTempLocal
		}
	}
	id, err := g.o.Store.Enqueue(ctx, m)
	var re *queue.ReplayError
	switch {
	case errors.As(err, &re) || errors.Is(err, queue.ErrIdempotencyMismatch):
		return "", err
	case err != nil:
		s.log.Error("enqueue failed", append(who, "err", err)...)
		return "", storeReply(err)
	}
	s.log.Info("accepted", append(who, "id", id, "from", m.From, "rcpts", len(m.Rcpts), "size", m.Size())...)
	if g.o.OnEnqueue != nil {
		g.o.OnEnqueue(id)
	}
	return id, nil
}

// checkRcpt applies the recipient rules that do not depend on SMTP
// (literals, SMTPUTF8, suppression) and returns the canonical address.
func (g *generation) checkRcpt(m mailbox.Mailbox, utf8 bool) (string, error) {
	canon := m.String()
	if m.IsLiteral() && !g.o.AllowAddressLiterals {
		return "", errLiteral
	}
	if !utf8 && !isASCII(canon) {
		return "", errNeedUTF8
	}
	if g.o.Suppressed != nil && g.o.Suppressed(canon) {
		return "", errSuppressed
	}
	return canon, nil
}

// senderAllowed applies a user's allowed_from to the envelope sender (the
// null sender is allowed only to users without the restriction).
func senderAllowed(u *User, from, domain string) bool {
	return u == nil || len(u.AllowedFrom) == 0 || (from != "" && domainAllowed(u, domain))
}
