package policy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"

	"sluice/reply"
)

// compiledRule is a validated config rule.
type compiledRule struct {
	n  int
	re *regexp.Regexp
	r  Rule
}

// Classify reads one reply. Precedence (design §4): config rules, then
// built-in provider rules, then the generic reading of the codes (RFC 3463
// enhanced codes decide where present), then keywords, then the basic code
// and the stage. It never panics and always returns a valid Class.
func (p *Policy) Classify(r reply.Reply) (v Verdict) {
	defer func() {
		if e := recover(); e != nil {
			v = Verdict{Class: ClassRecipientTemp, Rule: "fallback:panic", Reason: "The reply could not be read; retry this recipient later."}
		}
		if !validClass(v.Class) {
			v.Class = ClassRecipientTemp
		}
	}()
	v = p.classify(r)
	if v.Delay == 0 && r.Err == nil {
		v.Delay = ParseHint(r.Text, p.o.MaxHint)
	}
	if v.Class == ClassSuccess && (r.Stage != reply.StageDataEnd || r.Err != nil || r.Code/100 != 2) {
		// Belt and braces: whatever a rule says, only the 2xx reply to
		// the final dot is a delivery (RFC 5321 §4.1.1.4, §3.3).
		v = protocolVerdict(r)
	}
	return v
}

func (p *Policy) classify(r reply.Reply) Verdict {
	if r.Err != nil && r.Code == 0 {
		if errors.Is(r.Err, reply.ErrProtocol) {
			return protocolVerdict(r)
		}
		return classifyError(r)
	}
	if r.Code >= 200 && r.Code < 400 && (r.Stage != reply.StageDataEnd || r.Code >= 300) {
		// A 2xx or 3xx that does not follow the final dot is never a
		// delivery. The outbound side advances on the expected code
		// itself and reports any other as ErrProtocol; here it can only
		// come from `sluice explain` or a caller's mistake.
		return protocolVerdict(r)
	}
	line := r.String()
	for _, cr := range p.rules {
		if cr.re.MatchString(line) {
			v := Verdict{Class: cr.r.Class, Scope: cr.r.Scope, For: cr.r.For, Rule: fmt.Sprintf("config:%d", cr.n),
				Reason: fmt.Sprintf("Config rule %d (%q) says %s.", cr.n, cr.r.Match, cr.r.Class)}
			if v.Class == ClassThrottle && v.Scope == ScopeNone {
				v.Scope = ScopeBoth
			}
			if v.Class != ClassThrottle {
				v.Scope = ScopeNone
			}
			if v.Class == ClassAuthFix {
				v.Fix = authFix(r.Enhanced, r.Text)
				v.Alarm = true
			}
			return v
		}
	}
	if r.Code >= 200 && r.Code < 300 {
		return Verdict{Class: ClassSuccess, Rule: "generic:2xx", Reason: "The receiver accepted the message after the final dot."}
	}
	for i := range builtinRules {
		b := &builtinRules[i]
		if !b.matches(r) {
			continue
		}
		v := Verdict{Class: b.class, Scope: b.scope, For: b.forDur, Rule: "builtin:" + b.name, Fix: b.fix, Hard: b.hard, Alarm: b.alarm, Reason: b.reason}
		if b.name == "gmail-auth" {
			v.Fix = authFix(r.Enhanced, r.Text)
		}
		return v
	}
	return classifyGeneric(r)
}

// protocolVerdict is the reading of a receiver that broke the SMTP
// sequence. It is never a destination throttle: a confused server says
// nothing about how fast it wants mail.
func protocolVerdict(r reply.Reply) Verdict {
	return Verdict{Class: ClassProtocol, Rule: "protocol:" + string(r.Stage),
		Reason: fmt.Sprintf("Out of sequence at %s: only 250 to MAIL, 250/251 to RCPT, 354 to DATA and 2xx after the final dot advance a transaction (RFC 5321 §4.3.2); nothing is delivered, the connection is dropped and the recipients retry later on a new one.", r.Stage)}
}

// classifyError reads a network or TLS failure (no SMTP reply at all).
func classifyError(r reply.Reply) Verdict {
	var certErr *tls.CertificateVerificationError
	var unkAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recErr tls.RecordHeaderError
	isTLS := r.Stage == reply.StageSTARTTLS || errors.As(r.Err, &certErr) || errors.As(r.Err, &unkAuth) ||
		errors.As(r.Err, &hostErr) || errors.As(r.Err, &recErr) || strings.Contains(strings.ToLower(r.Err.Error()), "tls")
	if isTLS {
		return Verdict{Class: ClassUnavailable, Rule: "network:tls", Reason: "The TLS handshake failed; the destination is paused and probed later."}
	}
	var ne net.Error
	switch {
	case errors.Is(r.Err, context.DeadlineExceeded) || (errors.As(r.Err, &ne) && ne.Timeout()):
		return Verdict{Class: ClassUnavailable, Rule: "network:timeout", Reason: "The receiver did not answer in time; the destination is paused and probed later."}
	case r.Stage == reply.StageConnect:
		return Verdict{Class: ClassUnavailable, Rule: "network:connect", Reason: "The connection failed; the destination is paused and probed later."}
	}
	return Verdict{Class: ClassUnavailable, Rule: "network:error", Reason: "The connection broke; the destination is paused and probed later."}
}

var (
	kwGreylist    = regexp.MustCompile(`(?i)gr[ae]y-?list|come back in|try again in \d|retry in \d`)
	kwConnections = regexp.MustCompile(`(?i)too many (concurrent |simultaneous |open )?(connections|sessions)|connection (limit|rate)|concurrency`)
	kwRate        = regexp.MustCompile(`(?i)\brate\b|rate.?limit|per (hour|minute|second|day)|\bvolume\b|throttl|too many (messages|mails|emails)|sending too fast`)
	kwBusy        = regexp.MustCompile(`(?i)\bbusy\b|try again later|try later|overload`)
	kwUnavailable = regexp.MustCompile(`(?i)not available|unavailable|shutting down|maintenance`)
	enhRE         = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)
)

// connStage reports whether a refusal at this stage concerns the whole
// connection rather than a recipient or a message.
func connStage(s reply.Stage) bool {
	return s == reply.StageConnect || s == reply.StageGreeting || s == reply.StageEHLO || s == reply.StageSTARTTLS
}

func classifyGeneric(r reply.Reply) Verdict {
	text := r.Text
	if r.Code >= 500 && r.Code < 600 {
		return Verdict{Class: ClassPermanent, Rule: "generic:5xx", Reason: "The receiver refused permanently (5xx, RFC 5321 §4.2.1); bounce."}
	}
	if r.Code < 400 || r.Code >= 600 {
		// 0 without an error, 1xx or garbage: the receiver did not answer
		// in SMTP at all.
		return Verdict{Class: ClassUnavailable, Rule: "generic:no-reply", Reason: "The receiver gave no valid SMTP reply; the destination is paused."}
	}
	// 4xx from here on.
	enh := ""
	if enhRE.MatchString(r.Enhanced) {
		enh = r.Enhanced
	}
	switch {
	case strings.HasPrefix(enh, "4.7.") || strings.HasPrefix(enh, "5.7."):
		if kwGreylist.MatchString(text) || (enh[2:] == "7.1" && (r.Stage == reply.StageRcpt || kwBusy.MatchString(text))) && r.Code != 421 {
			return Verdict{Class: ClassGreylist, Rule: "generic:4.7.1", Reason: "A policy deferral at RCPT (RFC 3463 X.7.1), most likely greylisting; retry this recipient after the window."}
		}
		return Verdict{Class: ClassThrottle, Scope: scopeOf(r), Rule: "generic:4.7.x", Reason: "A policy deferral (RFC 3463 X.7.x): slow down for this destination."}
	case strings.HasPrefix(enh, "4.3.") || strings.HasPrefix(enh, "5.3."):
		if connStage(r.Stage) {
			return Verdict{Class: ClassUnavailable, Rule: "generic:4.3.x", Reason: "The receiving system is not accepting mail (RFC 3463 X.3.x); pause the destination and back off."}
		}
		return Verdict{Class: ClassThrottle, Scope: ScopeBoth, Rule: "generic:4.3.x", Reason: "The receiving system is short of resources (RFC 3463 X.3.x); slow down."}
	case strings.HasPrefix(enh, "4.4.") || strings.HasPrefix(enh, "5.4."):
		return Verdict{Class: ClassUnavailable, Rule: "generic:4.4.x", Reason: "A network or routing problem (RFC 3463 X.4.x); pause the destination and back off."}
	case enh == "4.2.0" && !connStage(r.Stage):
		return Verdict{Class: ClassGreylist, Rule: "generic:4.2.0", Reason: "A mailbox deferral without detail (4.2.0), typical of greylisting; retry after the window."}
	case strings.HasPrefix(enh, "4.2.") || strings.HasPrefix(enh, "5.2."):
		if !connStage(r.Stage) {
			return Verdict{Class: ClassRecipientTemp, Rule: "generic:4.2.x", Reason: "The mailbox is temporarily unavailable (RFC 3463 X.2.x); defer this recipient only."}
		}
	}
	// Keywords, where the enhanced code said nothing useful.
	switch {
	case kwGreylist.MatchString(text) && !connStage(r.Stage):
		return Verdict{Class: ClassGreylist, Rule: "keyword:greylist", Reason: "Greylisting: retry this recipient just after the window."}
	case kwConnections.MatchString(text):
		return Verdict{Class: ClassThrottle, Scope: ScopeConnections, Rule: "keyword:too many connections", Reason: "Too many connections: open fewer."}
	case kwRate.MatchString(text):
		return Verdict{Class: ClassThrottle, Scope: ScopeRate, Rule: "keyword:rate", Reason: "A rate or volume limit: send more slowly."}
	case kwUnavailable.MatchString(text) || (connStage(r.Stage) && strings.TrimSpace(text) == ""):
		return Verdict{Class: ClassUnavailable, Rule: "keyword:unavailable", Reason: "The service is not available; pause the destination and back off."}
	case kwBusy.MatchString(text):
		return Verdict{Class: ClassThrottle, Scope: scopeOf(r), Rule: "keyword:busy", Reason: "The receiver is busy: slow down for this destination."}
	}
	switch {
	case r.Code == 421:
		// RFC 5321 §3.8: 421 means the server is closing the channel; an
		// unexplained one is read as a request to slow down.
		return Verdict{Class: ClassThrottle, Scope: scopeOf(r), Rule: "generic:421", Reason: "An unexplained 421 (service closing the channel): slow down for this destination."}
	case connStage(r.Stage):
		return Verdict{Class: ClassUnavailable, Rule: "generic:4xx-session", Reason: "The receiver refused the session temporarily; pause the destination and back off."}
	}
	return Verdict{Class: ClassRecipientTemp, Rule: "generic:4xx", Reason: "A temporary failure (4xx); retry this recipient later."}
}

// scopeOf decides an unclear throttle's scope from keywords, then the
// stage: a refusal before MAIL concerns the connection.
func scopeOf(r reply.Reply) Scope {
	switch {
	case kwConnections.MatchString(r.Text):
		return ScopeConnections
	case kwRate.MatchString(r.Text):
		return ScopeRate
	case connStage(r.Stage):
		return ScopeConnections
	}
	return ScopeBoth
}
