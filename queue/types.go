package queue

import (
	"strings"
	"time"

	"sluice/dsn"
)

// State is the delivery state of one recipient.
type State string

const (
	StateQueued  State = "queued"  // due or waiting for its NextAttempt (never tried or deferred)
	StateActive  State = "active"  // leased: a delivery is in flight
	StateHeld    State = "held"    // kept out of the due index by an operator
	StateSent    State = "sent"    // final
	StateBounced State = "bounced" // final
	StateExpired State = "expired" // final
	StateDeleted State = "deleted" // final, by an operator
)

// AllStates lists every state, open ones first.
var AllStates = []State{StateQueued, StateActive, StateHeld, StateSent, StateBounced, StateExpired, StateDeleted}

// Open reports whether the recipient still needs work (queued, active or
// held). A message is done when none of its recipients is open.
func (s State) Open() bool {
	return s == StateQueued || s == StateActive || s == StateHeld
}

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool {
	for _, v := range AllStates {
		if s == v {
			return true
		}
	}
	return false
}

// NewMessage is what the SMTP side hands to Enqueue.
type NewMessage struct {
	From  string   // envelope sender, "" for the null sender
	Rcpts []string // full addresses
	// Body is the message; when Spool is set, it is the beginning of
	// the message and the Spool holds the rest (typically: header
	// fields added at the end of DATA, then the body as received).
	Body []byte
	// Spool, when set, is taken over by Enqueue: a large one becomes the
	// message's body file, a small one is stored inline after Body.
	Spool      *Spool
	ClientAddr string
	Helo       string
	User       string // authenticated user, "" if none
	SMTPUTF8   bool
	// RequireTLS: the client gave REQUIRETLS at MAIL (RFC 8689 §4.1);
	// the message goes on only over verified TLS to a next hop that
	// offers REQUIRETLS, or bounces.
	RequireTLS bool
	// TLSReport: a TLS-RPT report sluice queues itself (package
	// tlsrpt). Never set from a client: its delivery is left out of the
	// TLS-RPT tally, so that reports are not reported about.
	TLSReport bool
	// DSN and RcptDSN are the DSN parameters given at MAIL and at each
	// RCPT (RFC 3461); RcptDSN is nil or parallel to Rcpts.
	DSN     dsn.Envelope
	RcptDSN []dsn.Rcpt
	// Idempotency, when set, is recorded with the message in the same
	// transaction; a key seen before makes Enqueue return a
	// *ReplayError (or ErrIdempotencyMismatch) and queue nothing.
	Idempotency *Idempotency
}

// Attempt is one delivery try of one recipient.
type Attempt struct {
	At     time.Time
	Relay  string
	Reply  string
	Class  string
	Status string
}

// Recipient is the stored state of one envelope recipient.
type Recipient struct {
	Addr, Domain         string
	State                State
	NextAttempt          time.Time
	Attempts             int
	LastReply, LastClass string
	History              []Attempt
	DSN                  dsn.Rcpt // NOTIFY and ORCPT given at RCPT
	DelayWarned          bool     // the delay notice was sent
}

// Message is the stored envelope and per-recipient state of a message.
type Message struct {
	ID, From   string
	Received   time.Time
	Size       int64
	ClientAddr string
	Helo       string
	User       string
	SMTPUTF8   bool
	RequireTLS bool // REQUIRETLS given at MAIL (RFC 8689)
	Recipients []Recipient
	DSN        dsn.Envelope // RET and ENVID given at MAIL
	// Done is when the last recipient reached a final state
	// (sent/bounced/expired/deleted); zero while any is open.
	Done time.Time
}

// Item is one leased recipient, with what a delivery worker needs.
type Item struct {
	ID                    string
	Rcpt                  int
	Addr, Domain, From    string
	Attempts              int
	Received, NextAttempt time.Time
	// SMTPUTF8: the client gave the SMTPUTF8 parameter at MAIL (RFC 6531
	// §3.4); the delivery asks for it too.
	SMTPUTF8 bool
	// RequireTLS: the client gave REQUIRETLS at MAIL (RFC 8689 §4.1).
	RequireTLS bool
	// TLSReport: the message is a TLS-RPT report of sluice's own.
	TLSReport bool
	// The DSN parameters of the message (MAIL) and of the recipient
	// (RCPT), and whether its delay notice was sent.
	Env         dsn.Envelope
	RcptDSN     dsn.Rcpt
	DelayWarned bool
}

// Update changes the state of one recipient.
type Update struct {
	ID   string
	Rcpt int
	// State is StateQueued (with NextAttempt: deferred, or a lease
	// returned unused), StateSent, StateBounced or StateExpired.
	State       State
	NextAttempt time.Time
	// Attempt, when non-nil, is appended to History, Attempts is
	// incremented and LastReply/LastClass are set.
	Attempt *Attempt
	// DelayWarned records that the recipient's delay notice was sent
	// (queued before this update), so that it is sent once; it writes
	// an EventDelayed in the same transaction.
	DelayWarned bool
	// Detail goes into the event of the change only (events.go).
	Detail EventDetail
}

// Filter selects messages for List. Zero fields match everything.
type Filter struct {
	Domain    string
	State     State
	OlderThan time.Duration
	// After pages: only messages whose ID sorts after it.
	After string
	Limit int
}

// Suppression is one address that must not receive mail.
type Suppression struct {
	Addr, Reason string
	At           time.Time
}

// domainOf returns the lower-cased text after the last '@' (RFC 5321
// §4.1.2: the domain follows the final "@" of a Mailbox; a quoted local
// part may itself contain '@').
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}
