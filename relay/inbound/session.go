package inbound

import (
	"errors"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"sluice/dsn"
	"sluice/mailbox"
)

// Replies at the go-smtp boundary. go-smtp recognises only a bare
// *smtp.SMTPError (type assertion), so these are returned as they are.
var (
	errAuthRequired  = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	errEncryption    = &smtp.SMTPError{Code: 523, EnhancedCode: smtp.EnhancedCode{5, 7, 10}, Message: "encryption required: use STARTTLS first"}
	errAuthFailed    = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
	errAuthTooMany   = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many failed authentication attempts, closing connection"}
	errRate          = &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Message rate limit exceeded, try again later"}
	errBadAddr       = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax"}
	errBadSender     = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Bad sender address syntax"}
	errMailSyntax    = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "Syntax: MAIL FROM:<address>"}
	errRcptSyntax    = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "Syntax: RCPT TO:<address>"}
	errLiteral       = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Address literals are not accepted"}
	errNeedUTF8      = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Non-ASCII address requires SMTPUTF8"}
	errFromDomain    = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender domain not allowed for this user"}
	errSuppressed    = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "recipient is on the suppression list"}
	errTooManyRcpts  = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients"}
	errSequence      = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Bad sequence of commands"}
	errHeloAfterTLS  = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Send EHLO again after STARTTLS"}
	errBareLF        = &smtp.SMTPError{Code: 521, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Bare CR or LF in message data not allowed, closing connection"}
	errTooBig        = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message size exceeds fixed limit"}
	errHeaderTooBig  = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message header section exceeds fixed limit"}
	errLineTooLong   = &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Line too long, closing connection"}
	errLoop          = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 4, 6}, Message: "mail loops back to myself"}
	errNoSpace       = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage"}
	errInFlight      = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Too much mail in transit, try again later"}
	errTempLocal     = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary local problem, try again"}
	errUnknownMech   = &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "Unrecognized authentication mechanism"}
	errNotify        = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "Malformed NOTIFY parameter value"}
	errRequireTLS    = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 10}, Message: "REQUIRETLS needs a TLS session: use STARTTLS first"}
	errAuthAfterMail = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "AUTH not allowed during a mail transaction"}
)

type backend struct{}

// NewSession runs at the first HELO/EHLO. Our STARTTLS happens below
// go-smtp, so the session lives for the whole connection.
func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	ic, ok := c.Conn().(*conn)
	if !ok {
		return nil, errors.New("relay: connection not accepted through Server.Serve")
	}
	return &session{s: ic.srv, g: ic.g, c: ic, sc: c}, nil
}

// session is one SMTP session. go-smtp calls it from one goroutine at a
// time (BDAT's Data goroutine runs while the command loop waits). It runs
// under the generation its connection was admitted under, whatever
// Reconfigure does meanwhile.
type session struct {
	s  *Server
	g  *generation
	c  *conn
	sc *smtp.Conn

	user *User // authenticated user

	hasFrom  bool
	reserved int64 // bytes of the in-flight budget this transaction holds
	epoch    int   // STARTTLS epoch of the current transaction
	from     string
	utf8     bool
	// requireTLS: REQUIRETLS was given at MAIL (RFC 8689).
	requireTLS bool
	rcpts      []string
	// The DSN parameters (RFC 3461) of MAIL and of each RCPT; rcptDSN
	// is parallel to rcpts once any recipient gave one, else nil.
	env     dsn.Envelope
	rcptDSN []dsn.Rcpt
}

func (ss *session) Reset() {
	ss.g.o.InFlight.release(ss.reserved)
	ss.reserved = 0
	ss.hasFrom = false
	ss.from = ""
	ss.utf8 = false
	ss.requireTLS = false
	ss.rcpts = nil
	ss.env = dsn.Envelope{}
	ss.rcptDSN = nil
}

func (ss *session) Logout() error {
	ss.Reset() // gives back what an open transaction reserved
	return nil
}

// AuthMechanisms offers AUTH only over TLS (RFC 4954 §4: PLAIN and LOGIN
// send the password in the clear).
func (ss *session) AuthMechanisms() []string {
	isTLS, _, _, _ := ss.c.tlsState()
	if !isTLS || len(ss.g.o.Users) == 0 {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	isTLS, _, needHelo, _ := ss.c.tlsState()
	if needHelo {
		return nil, errHeloAfterTLS
	}
	if !isTLS {
		// RFC 4954 §6: 523 5.7.10 (RFC 5248) when the mechanism needs TLS.
		return nil, errEncryption
	}
	if ss.hasFrom {
		return nil, errAuthAfterMail
	}
	if len(ss.g.o.Users) == 0 {
		return nil, errUnknownMech
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return ss.authFailed(username, "authorization identity differs")
			}
			return ss.authenticate(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{auth: ss.authenticate}, nil
	}
	return nil, errUnknownMech
}

// authenticate checks a password against the bcrypt hash. The password is
// never logged.
func (ss *session) authenticate(username, password string) error {
	// A client out of failure budget gets no verdict on its guess, right
	// or wrong: otherwise the limit would only change the error code.
	if ss.g.authFail.exhausted(ss.c.ip) {
		ss.s.log.Warn("auth failures throttled", "client", ss.c.ip, "trace", ss.c.trace)
		ss.c.setCloseAfterReply()
		return errAuthTooMany
	}
	for i := range ss.g.o.Users {
		u := &ss.g.o.Users[i]
		if u.Name != username {
			continue
		}
		if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
			return ss.authFailed(username, "bad password")
		}
		ss.user = u
		ss.s.log.Info("auth ok", "client", ss.c.ip, "trace", ss.c.trace, "user", username)
		return nil
	}
	return ss.authFailed(username, "unknown user")
}

func (ss *session) authFailed(username, why string) error {
	ss.s.log.Info("auth failed", "client", ss.c.ip, "trace", ss.c.trace, "user", username, "reason", why)
	if !ss.g.authFail.allow(ss.c.ip) {
		ss.s.log.Warn("auth failures throttled", "client", ss.c.ip, "trace", ss.c.trace)
		ss.c.setCloseAfterReply()
		return errAuthTooMany
	}
	return errAuthFailed
}

func (ss *session) mail(from string, opts *smtp.MailOptions) error {
	isTLS, epoch, needHelo, _ := ss.c.tlsState()
	if needHelo {
		return errHeloAfterTLS
	}
	requireTLS := opts != nil && opts.RequireTLS
	if requireTLS && !isTLS {
		// RFC 8689 §4.1: the extension is offered, and the parameter
		// accepted, only over TLS; a message that asks for TLS all the
		// way must not have crossed its first hop in the clear.
		return errRequireTLS
	}
	if ss.user == nil && !ss.g.mayRelay(ss.c.ip) {
		ss.s.log.Info("mail refused: authentication required", "client", ss.c.ip, "trace", ss.c.trace)
		return errAuthRequired
	}
	utf8 := opts != nil && opts.UTF8
	canon, domain := "", ""
	if from != "" {
		m, err := ss.envelope(from, true)
		if err != nil {
			return err
		}
		canon, domain = m.String(), m.Domain
		if m.IsLiteral() && !ss.g.o.AllowAddressLiterals {
			return errLiteral
		}
		if !utf8 && !isASCII(canon) {
			return errNeedUTF8
		}
	}
	if !senderAllowed(ss.user, canon, domain) {
		ss.s.log.Info("sender domain not allowed", "client", ss.c.ip, "trace", ss.c.trace, "user", ss.user.Name, "domain", domain)
		return errFromDomain
	}
	if ss.g.msgRate != nil && !ss.g.msgRate.allow(ss.c.ip) {
		ss.s.log.Warn("message rate limited", "client", ss.c.ip, "trace", ss.c.trace)
		return errRate
	}
	var declared int64
	if opts != nil && opts.Size > 0 {
		declared = opts.Size
	}
	if ss.g.o.Space != nil {
		if err := ss.g.o.Space(declared); err != nil {
			ss.s.log.Warn("mail deferred: no space for new mail", "client", ss.c.ip, "trace", ss.c.trace, "size", declared, "err", err)
			return errNoSpace
		}
	}
	ss.Reset()
	size := ss.g.o.MaxMessageSize
	if declared > 0 {
		size = declared
	}
	if !ss.g.o.InFlight.reserve(size) {
		ss.s.log.Warn("mail deferred: limits.max_inflight_bytes reached", "client", ss.c.ip, "trace", ss.c.trace,
			"size", size, "in_flight", ss.g.o.InFlight.Used(), "max", ss.g.o.InFlight.Max())
		return errInFlight
	}
	ss.reserved = size
	ss.hasFrom = true
	ss.epoch = epoch
	ss.from = canon
	ss.utf8 = utf8
	ss.requireTLS = requireTLS
	if opts != nil {
		// go-smtp checked RET and decoded ENVID (xtext, printable ASCII).
		ss.env = dsn.Envelope{Ret: dsn.Ret(opts.Return), EnvID: opts.EnvelopeID}
	}
	return nil
}

// envelope returns the mailbox of a MAIL or RCPT path from the stand-in
// go-smtp passes on (path.go), or the refusal for a bad one: 501 for a
// malformed path, 553 with X.1.7 (sender) or X.1.3 (recipient) for a
// malformed address (RFC 3463 §3.2).
func (ss *session) envelope(addr string, sender bool) (mailbox.Mailbox, error) {
	m, err := ss.s.envelopeAddress(addr)
	switch {
	case err == nil:
		return m, nil
	case errors.Is(err, errPathSyntax) && sender:
		return m, errMailSyntax
	case errors.Is(err, errPathSyntax):
		return m, errRcptSyntax
	case errors.Is(err, errPathForged):
		// Never by design: a path go-smtp accepted that the conn did
		// not rewrite. Refused rather than guessed at.
		ss.s.log.Error("envelope path not rewritten", "client", ss.c.ip, "trace", ss.c.trace)
	}
	if sender {
		return m, errBadSender
	}
	return m, errBadAddr
}

// current reports whether the transaction began in the current STARTTLS
// epoch: a MAIL sent in plaintext does not survive STARTTLS (RFC 3207 §4.2).
func (ss *session) current() bool {
	_, epoch, needHelo, _ := ss.c.tlsState()
	return ss.hasFrom && ss.epoch == epoch && !needHelo
}

func (ss *session) rcpt(to string, opts *smtp.RcptOptions) error {
	if !ss.current() {
		return errSequence
	}
	if len(ss.rcpts) >= ss.g.o.MaxRecipients {
		return errTooManyRcpts
	}
	m, err := ss.envelope(to, false)
	if err != nil {
		return err
	}
	canon, err := ss.g.checkRcpt(m, ss.utf8)
	if err != nil {
		return err
	}
	var p dsn.Rcpt
	if opts != nil {
		vals := make([]string, len(opts.Notify))
		for i, v := range opts.Notify {
			vals[i] = string(v)
		}
		n, err := dsn.ParseNotify(vals)
		if err != nil {
			return errNotify // go-smtp checks the set; kept in case it does not
		}
		p.Notify = n
		if opts.OriginalRecipient != "" {
			p.ORcpt = strings.ToLower(string(opts.OriginalRecipientType)) + ";" + opts.OriginalRecipient
		}
	}
	if p != (dsn.Rcpt{}) && ss.rcptDSN == nil {
		ss.rcptDSN = make([]dsn.Rcpt, len(ss.rcpts), cap(ss.rcpts)+1)
	}
	ss.rcpts = append(ss.rcpts, canon)
	if ss.rcptDSN != nil {
		ss.rcptDSN = append(ss.rcptDSN, p)
	}
	return nil
}
