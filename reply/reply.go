// Package reply is the SMTP wire vocabulary shared by the outbound client
// (relay/outbound), which observes replies, and policy, which decides what
// they mean: a Reply seen at a Stage, and ErrProtocol. It holds no decision.
package reply

import (
	"errors"
	"fmt"
	"strings"
)

// Stage is the point of an SMTP session at which a reply (or a failure)
// was seen. The stage decides the scope of a refusal: one at greeting or
// EHLO concerns the connection, one at RCPT concerns the recipient.
type Stage string

const (
	StageConnect  Stage = "connect"
	StageGreeting Stage = "greeting"
	StageEHLO     Stage = "ehlo"
	StageSTARTTLS Stage = "starttls"
	StageAuth     Stage = "auth"
	StageMail     Stage = "mail"
	StageRcpt     Stage = "rcpt"
	StageData     Stage = "data"
	StageDataEnd  Stage = "data-end"
)

// Reply is one observation from the outbound side: an SMTP reply at a
// stage, or a network/TLS error (Err set, Code 0).
type Reply struct {
	Stage    Stage
	Code     int    // basic code, e.g. 421; 0 for a network error
	Enhanced string // RFC 3463 enhanced code, e.g. "4.7.0"; "" when absent
	Text     string // reply text without the codes
	Err      error  // network or TLS failure; nil for a real reply
}

// ErrProtocol marks a Reply.Err for a receiver that broke the SMTP
// command/reply sequence: a reply code the stage does not allow (a 250 to
// DATA, a 354 to MAIL, a 252 to RCPT), an unrequested reply already
// buffered after a final one, or bytes arriving while no reply was
// awaited. The reply stream can no longer be matched to our commands, so
// nothing read on that connection counts as a delivery: the outbound side
// wraps this error (with what was received at which stage) and Classify
// reads it as ClassProtocol.
var ErrProtocol = errors.New("SMTP protocol error")

// ErrTLSPolicy marks a Reply.Err for a next hop that does not meet the
// TLS policy in force for it (a [[delivery.tls_policy]] entry, a route's
// or the smarthost's mode, DANE, MTA-STS or delivery.tls; issue 14): no
// STARTTLS where encryption is required, a failed handshake, a
// certificate that does not verify, an MX host outside an enforced
// MTA-STS policy. Classify reads it as ClassTLSPolicy: the destination
// pauses, it is never a throttle, and nothing is sent in the clear.
var ErrTLSPolicy = errors.New("TLS policy not met")

// String renders the reply the way it appears in logs and DSNs.
func (r Reply) String() string {
	if r.Err != nil && r.Code == 0 {
		return fmt.Sprintf("(%s) %v", r.Stage, r.Err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d", r.Code)
	if r.Enhanced != "" {
		b.WriteString(" " + r.Enhanced)
	}
	if r.Text != "" {
		b.WriteString(" " + r.Text)
	}
	return b.String()
}
