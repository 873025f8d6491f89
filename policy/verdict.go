package policy

import "time"

// Scope says what a throttle asks the sender to reduce.
type Scope string

const (
	ScopeNone        Scope = ""            // not a throttle
	ScopeConnections Scope = "connections" // concurrent sessions
	ScopeRate        Scope = "rate"        // messages per unit of time
	ScopeBoth        Scope = "both"        // unclear: cut both
)

// Verdict is what one reply means for the sender.
type Verdict struct {
	Class  Class
	Scope  Scope
	Delay  time.Duration // hint parsed from the text, capped by Options.MaxHint; 0 = none
	For    time.Duration // suspend: pause exactly this long; throttle: hold the cut limits this long (rule `for`)
	Rule   string        // what matched: "config:N", "builtin:gmail-4.7.28", "generic:4.7.x", "keyword:..."
	Fix    string        // auth-fix only: "SPF", "DKIM", "alignment", "PTR", "TLS", "authentication"
	Reason string        // one human sentence, used by `sluice explain`
	Hard   bool          // throttle: cut straight to the floors (e.g. Microsoft 4.7.650)
	Alarm  bool          // the operator must be told (hard block, auth-fix)
}

// Rule is a config rule ([[policy.rule]]): a regexp on "CODE ENH TEXT".
type Rule struct {
	Match string
	Class Class
	For   time.Duration
	Scope Scope
}

func validClass(c Class) bool {
	switch c {
	case ClassSuccess, ClassThrottle, ClassSuspend, ClassUnavailable, ClassReconnect, ClassProtocol,
		ClassGreylist, ClassRecipientTemp, ClassAuthFix, ClassTLSPolicy, ClassPermanent:
		return true
	}
	return false
}

func validScope(s Scope) bool {
	switch s {
	case ScopeNone, ScopeConnections, ScopeRate, ScopeBoth:
		return true
	}
	return false
}
