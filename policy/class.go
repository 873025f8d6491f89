package policy

// Class is what a reply means for the sender.
type Class string

const (
	ClassSuccess     Class = "success"
	ClassThrottle    Class = "throttle"
	ClassSuspend     Class = "suspend"
	ClassUnavailable Class = "unavailable"
	ClassReconnect   Class = "reconnect"
	// ClassProtocol: the receiver broke the command/reply sequence (see
	// ErrProtocol). The connection is dropped and the recipients retry
	// with their own backoff on a new connection; it is never a
	// destination throttle or pause.
	ClassProtocol      Class = "protocol"
	ClassGreylist      Class = "greylist"
	ClassRecipientTemp Class = "recipient-temp"
	ClassAuthFix       Class = "auth-fix"
	// ClassTLSPolicy: the next hop does not meet the TLS policy in force
	// (see reply.ErrTLSPolicy; issue 14, superseding design §4 on TLS
	// failures). Every recipient there would fail the same way, so the
	// destination pauses as for unavailable; it is never a throttle (the
	// limits are untouched) and never a downgrade to plaintext.
	ClassTLSPolicy Class = "tls-policy"
	ClassPermanent Class = "permanent"
)
