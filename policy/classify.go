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

// Classify reads one reply. Precedence: config rules, then built-in
// provider rules, then the generic reading (classifyGeneric: the keyword
// families and the enhanced codes that name a cause, then the other RFC
// 3463 codes, then the basic code and the stage; issue 11). It never
// panics and always returns a valid Class.
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
		v.Delay = ParseHint(r.Text, p.rules.Load().maxHint)
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
		if errors.Is(r.Err, reply.ErrTLSPolicy) {
			return Verdict{Class: ClassTLSPolicy, Rule: "tls-policy",
				Reason: "The next hop does not meet the TLS policy in force (tls_policy, route, smarthost, DANE, MTA-STS or delivery.tls); nothing is sent in the clear: the destination is paused and probed later."}
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
	for _, cr := range p.rules.Load().rules {
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

// The keyword families, the one place where reply wording is read. The
// generic reading of a 4xx tries them in the order of families below
// (issue 11, superseding design §4 where it read a delay phrase or a
// 4.7.1 as greylisting by itself):
//
//  1. the reply is about one mailbox (its rate, or its state): recipient-temp;
//  2. words about connections, rate or volume, or a busy receiver: throttle
//     (a delay it names is the pause hint);
//  3. greylisting wording, even without the word: greylist;
//  4. the receiver's own fault or outage: unavailable;
//  5. an enhanced code that names a cause (enhancedCode.cause: RFC 3463
//     X.1 address, X.2.1-X.2.4 mailbox, X.3 system, X.4 network, X.5.3
//     recipients): its own reading. A cause outranks a bare request to
//     come back later, as the "server error, retry" shows;
//  6. a delay phrase ("try again later", "retry in 5 minutes"): greylist,
//     after MAIL only, since greylisting needs an envelope;
//
// then the other enhanced codes (X.2.0, X.7.x), then the basic code and
// the stage. docs/design-notes.md ("Reply classification") gives the
// reasons.
var (
	// kwMailbox: one mailbox is rate limited or temporarily unusable.
	// Postfix's "Recipient address rejected:" frame says which
	// restriction ran, not what it is about, so the mailbox must be the
	// subject of the words: "receives too many", "for this mailbox",
	// "mailbox busy". "Recipient rate limit" alone is Exchange's
	// sender-side recipient count: a throttle.
	kwMailbox = regexp.MustCompile(`(?i)` +
		`\b(?:receiv|gett?|gets\b)\w*\s+(?:mail|messages?|e-?mails?)?\s*(?:too\s+(?:many|much|fast|quickly|frequently)|at\s+(?:a|too\s+high\s+a|an\s+excessive)\s+rate|faster\s+than)` +
		`|(?:rate|limit|too\s+many|too\s+(?:fast|quickly)|frequen\w*)[^.;]{0,30}\b(?:for|to|on|of)\s+(?:this|that|the|each|a\s+single|one)\s+(?:mailbox|recipient|user|account|address|inbox)\b` +
		`|\b(?:this|that|the)\s+(?:mailbox|recipient|user|inbox)\b[^.;]{0,30}\b(?:rate|too\s+many\s+(?:messages|mails|e-?mails)|too\s+(?:fast|quickly))` +
		`|\bper[- ](?:recipient|mailbox|user|inbox)\b[^.;]{0,20}\b(?:rate|limit|quota)` +
		`|too\s+many\s+(?:messages|mails|e-?mails|deliveries)\s+(?:for|to)\s+<[^>]*@` +
		`|\b(?:mailbox|inbox|user|recipient|account)(?:'s)?\s+(?:is\s+|has\s+been\s+)?(?:temporarily\s+|currently\s+)?(?:unavailable|not\s+available|busy|locked|in\s+use|full|disabled|inactive|over\s+(?:its\s+|the\s+)?quota)\b` +
		`|\b(?:cannot|can'?t|unable\s+to|could\s+not)\s+(?:open|lock|access|write\s+to)\s+(?:the\s+|your\s+)?(?:mailbox|inbox)` +
		`|\b(?:disk|mailbox|inbox|storage|user)\s+quota\b|\bover\s+quota\b`)
	// kwConnections: too many sessions from this sender.
	kwConnections = regexp.MustCompile(`(?i)too\s+many\s+(?:\w+\s+){0,2}(?:connections|sessions)|connection\s+(?:limit|rate|count)|concurrency|max(?:imum)?\s+(?:number\s+of\s+)?(?:\w+\s+){0,2}connections`)
	// kwRate: too much mail per unit of time from this sender.
	kwRate = regexp.MustCompile(`(?i)\brate\b|rate.?limit|per\s+(?:hour|minute|second|day)|\bvolume\b|throttl` +
		`|too\s+many\s+(?:messages|mails|e-?mails)|too\s+many\s+recipients\b[^.;]{0,20}\b(?:this|per|an|each|a|in|the\s+last)\s+(?:\d+\s+)?(?:second|minute|hour|day)` +
		`|too\s+many\s+recipients\s+from\b|sending\s+too\s+(?:fast|quickly)|too\s+much\s+(?:mail|e-?mail|traffic)|slow\s+down` +
		`|\b(?:hourly|daily)\s+(?:\w+\s+)?(?:limit|quota)|sending\s+(?:limit|quota)|frequen(?:cy|t)`)
	// kwBusy: the receiver is loaded; it asks for less of everything.
	kwBusy = regexp.MustCompile(`(?i)\bbusy\b|overload|congest|(?:high|heavy)\s+load|load\s+(?:is\s+)?too\s+high`)
	// kwGreylist: greylisting, with or without the word: postgrey,
	// sqlgrey, milter-greylist ("Greylisting in action"), Exim greylistd
	// ("is not yet authorized to deliver mail"), policyd ("Greylisting in
	// effect") and the "we don't know you yet" paraphrases.
	kwGreylist = regexp.MustCompile(`(?i)gr[ae]y-?\s?list` +
		`|\bnot\s+(?:yet\s+)?(?:been\s+)?(?:known|seen|recogni[sz]ed)\b[^.;]{0,20}\b(?:yet|before)\b` +
		`|\bnot\s+yet\s+(?:been\s+)?(?:known|seen|authori[sz]ed|recogni[sz]ed|whitelisted|verified|trusted|accepted|allowed)` +
		`|\btriplet\b|\b(?:we|i)\s+(?:do\s+not|don'?t)\s+know\s+(?:you|your|this)|\b(?:have\s+not|haven'?t|never)\s+seen\s+(?:you|your|this)` +
		`|\b(?:first|initial)\s+(?:delivery\s+|connection\s+|contact\s+)?(?:attempt|contact)s?\b[^.;]{0,20}\b(?:rejected|deferred|refused|delayed)` +
		`|\b(?:deferred|delayed|rejected)\s+(?:for|due\s+to|as)\s+(?:an?\s+)?(?:anti-?spam|spam\s+(?:protection|prevention|control))`)
	// kwFault: the receiver's own fault (RFC 5321 §4.2.2's 451 "local
	// error in processing", qmail's "temporary local problem", Postfix's
	// "queue file write error" and "temporary lookup failure").
	kwFault = regexp.MustCompile(`(?i)\binternal\s+(?:server\s+|system\s+|mail\s+|processing\s+|software\s+)?(?:error|failure|fault|problem)` +
		`|\b(?:server|system|software|database|backend|back-end|storage|disk|i/?o|file\s?system|queue|queue\s+file|write|read|local|lookup|configuration|processing)\s+(?:error|failure|fault|problem|trouble)` +
		`|\berror\s+in\s+processing|\bunexpected\s+(?:error|condition|failure)|\bunhandled\b|\binsufficient\s+(?:system\s+)?(?:storage|resources|disk|memory|space)` +
		`|\bout\s+of\s+(?:memory|disk\s+space|resources)|\bno\s+space\s+left|\bdisk\s+(?:is\s+)?full|\btemporary\s+(?:problem|error)\b` +
		`|\b(?:unable\s+to|could\s+not|cannot|can'?t)\s+(?:process|queue|store|write|open|create)\b|misconfigur`)
	// kwUnavailable: the service itself is down.
	kwUnavailable = regexp.MustCompile(`(?i)not\s+available|unavailable|shutting\s+down|maintenance|not\s+accepting\s+(?:mail|messages|connections)`)
	// kwDelay: a request to come back, with or without a time.
	kwDelay = regexp.MustCompile(`(?i)\b(?:re-?try|try\s+(?:again|later|back)|come\s+back|check\s+back|re-?send|resubmit)\b|\blater\b|\btomorrow\b`)
	// kw5xxTemp: a 5xx that is a rate limit all the same, like the QQ and
	// 163 builtins: a count per window of time, or too many connections
	// (GoDaddy's IB607 "too many recipients this hour"). A permanent
	// refusal never names a window.
	kw5xxTemp = regexp.MustCompile(`(?i)too\s+many\s+(?:\w+\s+){0,2}(?:connections|sessions)` +
		`|too\s+many\s+(?:messages|mails|e-?mails|recipients)\b[^.;]{0,20}\b(?:this|per|an|each|a|in|the\s+last)\s+(?:\d+\s+)?(?:second|minute|hour|day)` +
		`|\brate[- ]?limit|\b(?:sending|message|connection)\s+rate\s+(?:limit\s+)?(?:exceeded|reached)` +
		`|\b(?:hourly|daily|sending)\s+(?:\w+\s+){0,2}(?:limit|quota)\s+(?:exceeded|reached)`)
	// kwTooManyRcpts: a cap on recipients per transaction.
	kwTooManyRcpts = regexp.MustCompile(`(?i)too\s+many\s+recipients`)

	enhRE = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)
)

// family is one kind of wording and what it means for a 4xx.
type family struct {
	re    *regexp.Regexp
	class Class
	// scope of a throttle; ScopeNone: decided by scopeOf.
	scope Scope
	// txnOnly: not at connection stages (before MAIL there is no
	// envelope to greylist or mailbox to limit).
	txnOnly bool
	// causeCodes: not words but an enhanced code that names a cause
	// (enhancedCode.cause) decides at this place, with its own reading.
	causeCodes bool
	rule       string
	reason     string
}

var families = []family{
	{re: kwMailbox, class: ClassRecipientTemp, txnOnly: true, rule: "keyword:mailbox",
		reason: "The reply is about one mailbox (its rate or its state): defer this recipient only; the destination's limits are untouched."},
	{re: kwConnections, class: ClassThrottle, scope: ScopeConnections, rule: "keyword:too many connections",
		reason: "Too many connections: open fewer."},
	{re: kwRate, class: ClassThrottle, scope: ScopeRate, rule: "keyword:rate",
		reason: "A rate or volume limit: send more slowly."},
	{re: kwBusy, class: ClassThrottle, rule: "keyword:busy",
		reason: "The receiver is busy: slow down for this destination."},
	{re: kwGreylist, class: ClassGreylist, rule: "keyword:greylist",
		reason: "Greylisting (in its words or a paraphrase): retry this recipient just after the window."},
	{re: kwFault, class: ClassUnavailable, rule: "keyword:fault",
		reason: "The receiver reports a fault of its own: pause the destination and back off; neither this recipient nor our rate is the cause."},
	{re: kwUnavailable, class: ClassUnavailable, rule: "keyword:unavailable",
		reason: "The service is not available (shut down, in maintenance, not accepting mail); pause the destination and back off."},
	// Not words: an enhanced code that names a cause decides here.
	{causeCodes: true},
	{re: kwDelay, class: ClassGreylist, txnOnly: true, rule: "keyword:delay",
		reason: "A request to retry later with no word about rate, connections or a fault: most likely greylisting; retry this recipient after the window."},
}

// enhancedCode is the reading of an RFC 3463 enhanced code where the
// wording decided nothing. code is a full code ("4.5.3") or a
// class.subject prefix ("4.3."); only the subject and detail are compared,
// as a 4xx with a 5.x.x code is still temporary.
type enhancedCode struct {
	code    string
	txnOnly bool
	// cause: the code names a cause (an address, a mailbox, the
	// receiver's system or network), so it outranks a delay phrase.
	cause  bool
	class  Class
	scope  Scope // throttle: ScopeNone means scopeOf
	rule   string
	reason string
}

var enhancedCodes = []enhancedCode{
	// RFC 3463 §3.3 X.2.0 "other or undefined mailbox status": what
	// postgrey sends, and nothing else says less.
	{code: "4.2.0", txnOnly: true, class: ClassGreylist, rule: "generic:4.2.0",
		reason: "A mailbox deferral without detail (4.2.0), typical of greylisting; retry after the window."},
	// §3.2 X.1.x addressing status (X.1.1 bad mailbox address, X.1.8
	// bad sender's system address): this recipient or this sender.
	{code: "4.1.", txnOnly: true, cause: true, class: ClassRecipientTemp, rule: "generic:4.1.x",
		reason: "An addressing problem (RFC 3463 X.1.x), temporary for now; retry this recipient later."},
	// §3.3 X.2.x mailbox status (X.2.1 disabled, X.2.2 full).
	{code: "4.2.", txnOnly: true, cause: true, class: ClassRecipientTemp, rule: "generic:4.2.x",
		reason: "The mailbox is temporarily unavailable (RFC 3463 X.2.x); defer this recipient only."},
	// §3.4 X.3.4 "message too big for system": this message only.
	{code: "4.3.4", txnOnly: true, cause: true, class: ClassRecipientTemp, rule: "generic:4.3.4",
		reason: "The message is too big for the receiver just now (RFC 3463 X.3.4); retry this recipient later."},
	// §3.4 X.3.x mail system status: full, not accepting, misconfigured.
	// The receiver's own condition: sending more slowly does not mend it.
	{code: "4.3.", cause: true, class: ClassUnavailable, rule: "generic:4.3.x",
		reason: "The receiving system is not accepting mail or is short of resources (RFC 3463 X.3.x); pause the destination and back off."},
	// §3.5 X.4.5 "mail system congestion": a request to slow down.
	{code: "4.4.5", cause: true, class: ClassThrottle, scope: ScopeBoth, rule: "generic:4.4.5",
		reason: "The receiving system is congested (RFC 3463 X.4.5); slow down."},
	// §3.5 X.4.x network and routing.
	{code: "4.4.", cause: true, class: ClassUnavailable, rule: "generic:4.4.x",
		reason: "A network or routing problem (RFC 3463 X.4.x); pause the destination and back off."},
	// §3.6 X.5.3 "too many recipients": the rest go in a later
	// transaction (RFC 5321 §4.5.3.1.10).
	{code: "4.5.3", txnOnly: true, cause: true, class: ClassRecipientTemp, rule: "generic:4.5.3",
		reason: "Too many recipients in one transaction (RFC 3463 X.5.3); this recipient is retried in a later one."},
	// §3.8 X.7.x security or policy. Without greylisting words or a
	// delay phrase, a 4.7.1 is a policy deferral like the others.
	{code: "4.7.", class: ClassThrottle, rule: "generic:4.7.x",
		reason: "A policy deferral (RFC 3463 X.7.x): slow down for this destination."},
}

// enhancedOf finds the reading of a well-formed enhanced code at this
// stage, or nil.
func enhancedOf(enh string, session bool) *enhancedCode {
	if !enhRE.MatchString(enh) {
		return nil
	}
	sub := enh[1:] // ".7.1": the subject and detail
	for i := range enhancedCodes {
		e := &enhancedCodes[i]
		if e.txnOnly && session {
			continue
		}
		if sub == e.code[1:] || (strings.HasSuffix(e.code, ".") && strings.HasPrefix(sub, e.code[1:])) {
			return e
		}
	}
	return nil
}

// connStage reports whether a refusal at this stage concerns the whole
// connection rather than a recipient or a message.
func connStage(s reply.Stage) bool {
	return s == reply.StageConnect || s == reply.StageGreeting || s == reply.StageEHLO || s == reply.StageSTARTTLS
}

func classifyGeneric(r reply.Reply) Verdict {
	text := r.Text
	if r.Code >= 500 && r.Code < 600 {
		return classify5xx(r)
	}
	if r.Code < 400 || r.Code >= 600 {
		// 0 without an error, 1xx or garbage: the receiver did not answer
		// in SMTP at all.
		return Verdict{Class: ClassUnavailable, Rule: "generic:no-reply", Reason: "The receiver gave no valid SMTP reply; the destination is paused."}
	}
	// 4xx from here on: the wording first, then the enhanced code.
	session := connStage(r.Stage)
	for i := range families {
		f := &families[i]
		if f.txnOnly && session {
			continue
		}
		if f.causeCodes {
			if e := enhancedOf(r.Enhanced, session); e != nil && e.cause {
				return verdictOf(r, e.class, e.scope, e.rule, e.reason)
			}
			continue
		}
		if f.re.MatchString(text) {
			return verdictOf(r, f.class, f.scope, f.rule, f.reason)
		}
	}
	if e := enhancedOf(r.Enhanced, session); e != nil {
		return verdictOf(r, e.class, e.scope, e.rule, e.reason)
	}
	// Then the basic code and the stage.
	switch {
	case session && strings.TrimSpace(text) == "":
		return Verdict{Class: ClassUnavailable, Rule: "keyword:unavailable", Reason: "The receiver refused the session without a word; pause the destination and back off."}
	case r.Code == 421:
		// RFC 5321 §3.8: 421 means the server is closing the channel; an
		// unexplained one is read as a request to slow down.
		return Verdict{Class: ClassThrottle, Scope: scopeOf(r), Rule: "generic:421", Reason: "An unexplained 421 (service closing the channel): slow down for this destination."}
	case session:
		return Verdict{Class: ClassUnavailable, Rule: "generic:4xx-session", Reason: "The receiver refused the session temporarily; pause the destination and back off."}
	}
	return Verdict{Class: ClassRecipientTemp, Rule: "generic:4xx", Reason: "A temporary failure (4xx); retry this recipient later."}
}

// classify5xx reads a permanent refusal. Two kinds are not permanent
// whatever the code says: a rate or connection limit (a count per window
// of time), and RFC 5321 §4.5.3.1.10's 552 "too many recipients", which
// "SHOULD" be treated as the 452 it ought to have been.
func classify5xx(r reply.Reply) Verdict {
	switch {
	case kw5xxTemp.MatchString(r.Text):
		return verdictOf(r, ClassThrottle, ScopeNone, "keyword:rate-5xx",
			"A rate or connection limit, even with a 5xx: slow down rather than bounce.")
	case kwTooManyRcpts.MatchString(r.Text) || r.Enhanced == "5.5.3":
		return Verdict{Class: ClassRecipientTemp, Rule: "generic:552-recipients",
			Reason: "Too many recipients in one transaction (RFC 5321 §4.5.3.1.10: a 552 here means 452); this recipient is retried in a later one."}
	}
	return Verdict{Class: ClassPermanent, Rule: "generic:5xx", Reason: "The receiver refused permanently (5xx, RFC 5321 §4.2.1); bounce."}
}

// verdictOf builds a verdict; a throttle without a fixed scope gets one
// from scopeOf, and only a throttle has a scope.
func verdictOf(r reply.Reply, c Class, sc Scope, rule, reason string) Verdict {
	v := Verdict{Class: c, Rule: rule, Reason: reason}
	if c == ClassThrottle {
		v.Scope = sc
		if sc == ScopeNone {
			v.Scope = scopeOf(r)
		}
	}
	return v
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
