package admin

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"sluice/policy"
	"sluice/reply"
)

// Explanation is what `sluice explain` prints for one reply line.
type Explanation struct {
	Line     string `json:"line"`
	Stage    string `json:"stage"`
	Code     int    `json:"code"`
	Enhanced string `json:"enhanced,omitempty"`
	Class    string `json:"class"`
	Scope    string `json:"scope,omitempty"`
	Rule     string `json:"rule"`
	Reason   string `json:"reason"`
	Reaction string `json:"reaction"`
	Delay    string `json:"delay_hint,omitempty"`
	For      string `json:"for,omitempty"`
	Fix      string `json:"fix,omitempty"`
	// HTTP is set when the line is HTTP's 421 Misdirected Request, which
	// shares the number with SMTP's 421 and nothing else.
	HTTP string `json:"http,omitempty"`
}

var (
	// RFC 5321 §4.2: Reply-code SP / "-" text; RFC 3463 §2: class.subject.detail.
	replyRe    = regexp.MustCompile(`^\s*([2-5][0-9][0-9])(?:[ -]+|$)(?:([245]\.[0-9]{1,3}\.[0-9]{1,3})(?:\s+|$))?(.*)$`)
	httpLineRe = regexp.MustCompile(`(?i)^\s*(?:HTTP/[0-9.]+\s+)?421\s+Misdirected\s+Request\b`)
)

// ParseReplyLine reads "CODE [ENHANCED] TEXT" as printed in logs, DSNs
// and `queue show`. A line with no code gives Code 0 and the whole line
// as text.
func ParseReplyLine(line string) reply.Reply {
	line = strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(line, "\r", " "), "\n", " "))
	m := replyRe.FindStringSubmatch(line)
	if m == nil {
		return reply.Reply{Text: line}
	}
	code, _ := strconv.Atoi(m[1])
	return reply.Reply{Code: code, Enhanced: m[2], Text: strings.TrimSpace(m[3])}
}

// reactions say what sluice does for each class (design §4).
var reactions = map[policy.Class]string{
	policy.ClassSuccess:       "Delivered. Additive increase toward the configured maxima; the destination's backoff resets.",
	policy.ClassThrottle:      "The destination's concurrency and/or rate is halved (at most once per decrease window) and it pauses briefly with backoff and jitter; it recovers additively after a run of successes. The recipient retries later.",
	policy.ClassSuspend:       "The destination pauses for exactly the rule's duration, then resumes at reduced limits.",
	policy.ClassUnavailable:   "The destination pauses with exponential backoff (retry_base × 2^k, capped at retry_max); when the pause ends one probe connection runs before full concurrency.",
	policy.ClassReconnect:     "Not a throttle: the connection is closed and reopened, and the destination's messages per connection are lowered.",
	policy.ClassProtocol:      "Not a throttle: nothing is delivered, the connection is dropped without QUIT, and each recipient retries on a new connection with its own backoff; the destination's limits are untouched.",
	policy.ClassGreylist:      "This recipient only: retried just after the hinted delay, else the learned greylist window, else greylist_default. Destination limits are untouched.",
	policy.ClassRecipientTemp: "This recipient only: retried with exponential backoff.",
	policy.ClassAuthFix:       "Deferred, and the sender-side alarm names the fix in the log and metrics: the receiver will keep refusing until the sender's authentication is repaired.",
	policy.ClassTLSPolicy:     "Not a throttle: the next hop does not meet the TLS policy in force; nothing is sent in the clear, the destination pauses with exponential backoff like unavailable, and the failure is logged and counted (class tls-policy).",
	policy.ClassPermanent:     "This recipient bounces with a DSN to the sender; on 5.1.1 it is added to the suppression list.",
}

// hintReactions say what a delay named in the reply changes, for the
// classes whose reaction uses it (policy.Observe: the destination's pause
// lasts at least the hint; a recipient-temp retry comes just after it). A
// greylist's reaction already says it.
var hintReactions = map[policy.Class]string{
	policy.ClassRecipientTemp: "The reply names a delay (%s): this recipient is retried just after it (capped by max_hint) instead of at its own backoff.",
	policy.ClassThrottle:      "The reply names a delay (%s): the destination's pause lasts at least that long (capped by max_hint and retry_max).",
	policy.ClassUnavailable:   "The reply names a delay (%s): the destination's pause lasts at least that long (capped by max_hint and retry_max).",
}

// Explain classifies line at stage with p's classifier (config rules
// included) and says what sluice does about it.
func Explain(p *policy.Policy, stage reply.Stage, line string) Explanation {
	if stage == "" {
		stage = reply.StageRcpt
	}
	r := ParseReplyLine(line)
	r.Stage = stage
	v := p.Classify(r)
	e := Explanation{Line: strings.TrimSpace(line), Stage: string(stage), Code: r.Code, Enhanced: r.Enhanced,
		Class: string(v.Class), Scope: string(v.Scope), Rule: v.Rule, Reason: v.Reason, Reaction: reactions[v.Class], Fix: v.Fix}
	if v.Delay > 0 {
		e.Delay = v.Delay.String()
		if h, ok := hintReactions[v.Class]; ok {
			e.Reaction += " " + fmt.Sprintf(h, e.Delay)
		}
	}
	if v.For > 0 {
		e.For = v.For.String()
	}
	if httpLineRe.MatchString(line) {
		e.HTTP = "This is HTTP's 421 Misdirected Request (RFC 9110 §15.5.20), not SMTP: a web server got a request for a host name it does not serve on that connection, usually because a client reused one TLS connection for several host names (HTTP/2 connection coalescing) or because the certificate/SNI and virtual-host configuration disagree. Fix the web server or proxy (certificate names, SNI routing, virtual hosts); sluice plays no part. Read as SMTP, the line would be classified as below."
	}
	return e
}
