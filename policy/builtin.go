package policy

import (
	"regexp"
	"strings"
	"time"

	"sluice/reply"
)

// builtinRule is a provider-specific reading of a reply, from the
// providers' postmaster pages (see shared/replies.md). Each one exists
// because the generic reading of the codes would get that reply wrong or
// too vaguely.
type builtinRule struct {
	name   string
	enh    []string       // any of these enhanced codes (empty: any)
	re     *regexp.Regexp // on the reply text (nil: any)
	unless *regexp.Regexp // not when the text also matches this (nil: never)
	code   int            // first digit of the basic code (0: any)
	class  Class
	scope  Scope
	forDur time.Duration
	fix    string
	hard   bool
	alarm  bool
	reason string
}

// kwThrottle is any of the throttle families' words.
var kwThrottle = regexp.MustCompile(kwConnections.String() + `|` + kwRate.String() + `|` + kwBusy.String())

var builtinRules = []builtinRule{
	{name: "http-421", re: regexp.MustCompile(`(?i)misdirected request`), class: ClassReconnect,
		reason: "This is the HTTP meaning of 421 (Misdirected Request: connection reuse, SNI or proxy routing), not an SMTP throttle; retry on a fresh connection."},
	{name: "yahoo-TSS04", re: regexp.MustCompile(`(?i)\[TSS0[0-9]\]`), code: 4, class: ClassSuspend, scope: ScopeBoth, forDur: 2 * time.Hour,
		reason: "Yahoo/AOL deferred mail for volume or complaints; the destination is suspended for about two hours, then resumes slowly."},
	{name: "yahoo-TS03", re: regexp.MustCompile(`(?i)\[TS0[0-9]\]|permanently deferred`), code: 4, class: ClassSuspend, scope: ScopeBoth, forDur: 12 * time.Hour, alarm: true,
		reason: "Yahoo/AOL hard-blocked the sending IP; retrying will not help until the operator acts."},
	{name: "max-msgs-per-conn", re: regexp.MustCompile(`(?i)max(imum)?\.? *(number of )?messages? (per|for this) (connection|session)|too many messages (in|on|for) this (connection|session)`), class: ClassReconnect,
		reason: "The receiver caps messages per connection; reconnect and send fewer per session."},
	{name: "gmail-4.7.28", enh: []string{"4.7.28"}, code: 4, class: ClassThrottle, scope: ScopeBoth,
		reason: "Gmail sees an unusual rate from this IP; cut rate and concurrency and pause."},
	{name: "gmail-unusual-rate", re: regexp.MustCompile(`(?i)unusual rate`), code: 4, class: ClassThrottle, scope: ScopeBoth,
		reason: "Gmail sees an unusual rate of (unsolicited) mail; cut rate and concurrency and pause."},
	{name: "gmail-4.7.23", enh: []string{"4.7.23"}, class: ClassAuthFix, fix: "PTR", alarm: true,
		reason: "The receiver wants a PTR (reverse DNS) record for the sending IP."},
	{name: "gmail-4.7.29", enh: []string{"4.7.29"}, class: ClassAuthFix, fix: "TLS", alarm: true,
		reason: "The receiver wants mail over TLS; require STARTTLS for this destination."},
	// RFC 8689 §5: 5.7.30 is also "REQUIRETLS support required", which
	// the outbound side says itself (and a next hop may say) of one
	// message that asked for REQUIRETLS. It bounces that message; it says
	// nothing about our authentication or the destination (before the
	// Gmail rule, which reads 5.7.30 as unauthenticated mail).
	{name: "requiretls", enh: []string{"5.7.10", "5.7.30"}, re: regexp.MustCompile(`(?i)\bREQUIRETLS\b`), code: 5, class: ClassPermanent,
		reason: "The message asked for REQUIRETLS (RFC 8689) and the next hop cannot meet it (verified TLS and REQUIRETLS support); bounce it, the destination is fine."},
	{name: "gmail-auth", enh: []string{"4.7.26", "4.7.27", "4.7.30", "4.7.31", "4.7.32", "5.7.26", "5.7.27", "5.7.30", "5.7.31", "5.7.32"},
		class: ClassAuthFix, fix: "authentication", alarm: true,
		reason: "The receiver found the mail unauthenticated or misaligned (SPF/DKIM/DMARC)."},
	// Postfix's reject_unknown_(reverse_)client_hostname says "cannot
	// find your (reverse) hostname".
	{name: "ptr-missing", re: regexp.MustCompile(`(?i)\bPTR\b|reverse (dns|lookup)|rdns|cannot find your (reverse )?hostname`), code: 4, class: ClassAuthFix, fix: "PTR", alarm: true,
		reason: "The receiver wants reverse DNS for the sending IP."},
	{name: "gmail-multiple-domains", re: regexp.MustCompile(`(?i)multiple destination domains per transaction`), code: 4, class: ClassRecipientTemp,
		reason: "Gmail takes one recipient domain per transaction; this recipient goes in a transaction of its own, the destination is fine."},
	{name: "gmail-4.3.0", enh: []string{"4.3.0"}, re: regexp.MustCompile(`(?i)temporary system problem`), code: 4, class: ClassUnavailable,
		reason: "The receiver has a temporary system problem; pause the destination and back off."},
	{name: "gmail-4.7.0-closing", enh: []string{"4.7.0"}, re: regexp.MustCompile(`(?i)try again later, closing connection`), code: 4, class: ClassThrottle, scope: ScopeConnections,
		reason: "Gmail's connection-rate guard: open fewer connections."},
	{name: "gmail-4.2.1", enh: []string{"4.2.1"}, code: 4, class: ClassRecipientTemp,
		reason: "This mailbox receives mail too quickly; defer this recipient only."},
	{name: "microsoft-4.7.650", enh: []string{"4.7.650", "4.7.651"}, code: 4, class: ClassThrottle, scope: ScopeBoth, hard: true, forDur: 90 * time.Minute,
		reason: "Microsoft rate-limits this IP for its reputation; one connection at a low rate."},
	{name: "microsoft-4.7.652", enh: []string{"4.7.652"}, code: 4, class: ClassThrottle, scope: ScopeConnections,
		reason: "Microsoft counts too many connections from this IP; open fewer."},
	{name: "microsoft-4.7.500", enh: []string{"4.7.500"}, code: 4, class: ClassThrottle, scope: ScopeBoth,
		reason: "Microsoft is busy or throttling; slow down."},
	{name: "microsoft-RP", re: regexp.MustCompile(`(?i)\bRP-00[0-9]\b`), code: 4, class: ClassThrottle, scope: ScopeRate,
		reason: "Microsoft caps messages per hour and per day; cut the rate."},
	{name: "comcast-sessions", re: regexp.MustCompile(`(?i)too many sessions`), code: 4, class: ClassThrottle, scope: ScopeConnections,
		reason: "Too many sessions from this IP; open fewer."},
	{name: "comcast-RL", re: regexp.MustCompile(`(?i)\bRL[0-9]{4}\b|\bthrottled\b`), code: 4, class: ClassThrottle, scope: ScopeRate,
		reason: "The receiver throttles this IP's message rate; cut the rate."},
	{name: "cn-connection-frequency", re: regexp.MustCompile(`(?i)connection.{0,20}(frequency limited|too frequent)`), class: ClassThrottle, scope: ScopeConnections,
		reason: "The receiver limits connection frequency (QQ/163 style, even with a 5xx); open fewer connections."},
	{name: "cn-frequency", re: regexp.MustCompile(`(?i)frequency limited|too frequent|frequency (is )?too high`), class: ClassThrottle, scope: ScopeRate,
		reason: "The receiver limits sending frequency (QQ/163 style, even with a 5xx); cut the rate."},
	// Mimecast greylists with this text (its SMTP error code page, 451).
	{name: "mimecast-greylist", re: regexp.MustCompile(`(?i)internal resource temporarily unavailable`), code: 4, class: ClassGreylist,
		reason: "Mimecast's greylisting reply: retry this recipient just after the window, same IP and envelope."},
	// Words about connections, rate or volume come before greylisting
	// (issue 11): such a reply falls through to the generic reading.
	{name: "postgrey", re: regexp.MustCompile(`(?i)gr[ae]ylist`), unless: kwThrottle, code: 4, class: ClassGreylist,
		reason: "Greylisting: retry this recipient just after the window, same IP and envelope."},
}

func (b *builtinRule) matches(r reply.Reply) bool {
	if b.code != 0 && r.Code/100 != b.code {
		return false
	}
	if len(b.enh) > 0 {
		ok := false
		for _, e := range b.enh {
			if r.Enhanced == e {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if b.re != nil && !b.re.MatchString(r.Text) {
		return false
	}
	if b.unless != nil && b.unless.MatchString(r.Text) {
		return false
	}
	return true
}

// authFix names what to fix from the enhanced code and the text.
func authFix(enh, text string) string {
	t := strings.ToLower(text)
	switch {
	case strings.Contains(t, "align") || strings.Contains(t, "dmarc"):
		return "alignment"
	case strings.Contains(t, "dkim"):
		return "DKIM"
	case strings.Contains(t, "spf"):
		return "SPF"
	}
	if len(enh) < 3 {
		return "authentication"
	}
	switch enh[2:] {
	case "7.27":
		return "SPF"
	case "7.30":
		return "DKIM"
	case "7.31", "7.32":
		return "alignment"
	}
	return "authentication"
}
