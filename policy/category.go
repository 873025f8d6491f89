package policy

import (
	"errors"
	"net"
	"regexp"
	"strings"

	"sluice/reply"
)

// Category is the coarse reason for a failed or deferred delivery that
// an application can act on (issue 13): stop mailing a user-unknown
// address, wait out a mailbox-full one, fix its DKIM on auth, and so on.
// Delivery events carry it; it never drives sluice's own reaction, which
// is the Class's.
type Category string

const (
	CatUserUnknown Category = "user-unknown"
	CatMailboxFull Category = "mailbox-full"
	CatBlocked     Category = "blocked"
	CatSpam        Category = "spam"
	CatPolicy      Category = "policy"
	CatAuth        Category = "auth"
	CatThrottled   Category = "throttled"
	CatGreylisted  Category = "greylisted"
	CatTooBig      Category = "too-big"
	CatDNS         Category = "dns"
	CatTLS         Category = "tls"
	CatOther       Category = "other"
)

// Categories lists every category.
var Categories = []Category{CatUserUnknown, CatMailboxFull, CatBlocked, CatSpam, CatPolicy, CatAuth,
	CatThrottled, CatGreylisted, CatTooBig, CatDNS, CatTLS, CatOther}

// The wording families that refine a class into a category, tried in
// the order of CategoryOf. Like the classifier's keyword families
// (classify.go) they read the text only where the codes do not tell.
var (
	catThrottleRe = regexp.MustCompile(`(?i)too many (recipients|connections|messages)|rate limit|sent to too many`)
	catAuthRe     = regexp.MustCompile(`(?i)\bdmarc\b|\bspf\b|\bdkim\b|authenticat`)
	catAccountRe  = regexp.MustCompile(`(?i)(account|user|recipient address)\b.{0,40}\b(blocked|bloque|locked|disabled)|disabled recipient`)
	catContentRe  = regexp.MustCompile(`(?i)content presents|\bvirus`)
	catSpamRe     = regexp.MustCompile(`(?i)\bspam\b|\bUBE\b|\bvirus|content (rejected|presents)|message filtered|mail rejected|flagged|junk`)
	catBlockedRe  = regexp.MustCompile(`(?i)block|blacklist|black list|\blisted\b|dnsbl|rbl\b|reputation|banned|\bPTR\b|reverse dns|unwanted messages|abuse|not accepting connections|mismatches client ip|may not be mail exchanger`)
	// Upper case only: "ip=" in a URL is no block.
	catBlockedCaseRe = regexp.MustCompile(`\bIP=|\(BL\)`)
	catTooBigRe      = regexp.MustCompile(`(?i)too (large|big)|size (exceeds|limit)|exceeds (fixed )?(maximum )?(message )?size|length exceeds|sizelimit`)
	catFullRe        = regexp.MustCompile(`(?i)quota|mailbox (is |was )?full|mail ?box full|too much mail data|insufficient.*storage`)
	catHostRe        = regexp.MustCompile(`(?i)host unknown|invalid domain|domain (is )?not (reachable|found)|does not accept mail|unroutable|^[^ ]*\.[a-z]{2,} does not exist|\bnxdomain\b|no such domain`)
	catUserRe        = regexp.MustCompile(`(?i)user unknown|unknown user|unknown recipient|no such (user|mailbox|recipient|address)|does ?n[o']t (exist|have .* account)|not exist|not found|invalid recipient|mailbox unavailable|not our (user|customer)|no mailbox|no longer on server|illegal user|address rejected|recipient.*rejected: user`)
	catPolicyRe      = regexp.MustCompile(`(?i)polic|not allowed|not accepted|denied|reject|relay|violation|not permitted|refused|invalid`)
)

func blockedText(s string) bool {
	return catBlockedRe.MatchString(s) || catBlockedCaseRe.MatchString(s)
}

// CategoryOf derives the category of a failed reply from the
// classifier's verdict for it, refined by the RFC 3463 code and the
// wording where the class alone is too coarse (a permanent 5xx may be a
// user unknown, a full mailbox or a block list). The mapping from
// sisimai's reasons and each disagreement are in docs/design-notes.md.
func CategoryOf(r reply.Reply, v Verdict) Category {
	if r.Err != nil && r.Code == 0 {
		var dnsErr *net.DNSError
		switch {
		case v.Rule == "network:tls" || v.Class == ClassTLSPolicy:
			return CatTLS
		case errors.As(r.Err, &dnsErr):
			return CatDNS
		}
		return CatOther
	}
	text := r.Text
	switch v.Class {
	case ClassSuccess:
		return ""
	case ClassGreylist:
		return CatGreylisted
	case ClassThrottle:
		if blockedText(text) {
			return CatBlocked // "Client host rejected" in a 4.7.1: a block that may lift
		}
		return CatThrottled
	case ClassAuthFix:
		switch v.Fix {
		case "TLS":
			return CatTLS
		case "PTR":
			return CatBlocked
		}
		return CatAuth
	case ClassSuspend:
		return CatBlocked
	}
	sub := enhancedSubject(r.Enhanced)
	session := r.Stage == reply.StageConnect || r.Stage == reply.StageGreeting || r.Stage == reply.StageEHLO
	switch {
	case catThrottleRe.MatchString(text):
		return CatThrottled
	case catAuthRe.MatchString(text) || sub == "7.8" || sub == "7.9":
		// RFC 4954 §6: 5.7.8 credentials invalid, 5.7.9 mechanism too weak.
		return CatAuth
	case strings.Contains(strings.ToLower(text), "tls"):
		return CatTLS
	case sub == "2.2" || catFullRe.MatchString(text):
		return CatMailboxFull
	case sub == "3.4" || sub == "2.3" || catTooBigRe.MatchString(text):
		return CatTooBig
	case catAccountRe.MatchString(text):
		return CatUserUnknown // the recipient's account is blocked or disabled, not us
	case r.Stage != reply.StageMail && (sub == "1.1" || sub == "1.10" || sub == "1.6" || sub == "2.1"):
		// RFC 3463: bad destination mailbox, moved, disabled.
		return CatUserUnknown
	case catContentRe.MatchString(text):
		return CatSpam // the content, whatever else the text blames
	case blockedText(text):
		return CatBlocked
	case catSpamRe.MatchString(text):
		return CatSpam
	case session:
		// Refused before any address was given: the receiver does not
		// want our client (its IP, name or reputation).
		return CatBlocked
	case r.Stage == reply.StageMail || sub == "1.7" || sub == "1.8":
		// A refusal at MAIL is about the sender (RFC 5321 §3.3): its
		// address or domain, never a recipient's mailbox.
		return CatPolicy
	case sub == "1.2" || sub == "4.4" || catHostRe.MatchString(text):
		return CatDNS
	case catUserRe.MatchString(text):
		return CatUserUnknown
	case strings.HasPrefix(sub, "7.") || strings.HasPrefix(sub, "6.") || catPolicyRe.MatchString(text):
		// X.7.x security or policy, X.6.x the content (RFC 3463 §3.7, §3.6).
		return CatPolicy
	}
	return CatOther
}

// enhancedSubject is "subject.detail" of an RFC 3463 code ("5.1.1" ->
// "1.1"), "" if there is none.
func enhancedSubject(enh string) string {
	if i := strings.IndexByte(enh, '.'); i > 0 {
		return enh[i+1:]
	}
	return ""
}
