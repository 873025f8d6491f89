package auth

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-smtp"
)

// Input is one accepted message at the end of DATA.
type Input struct {
	MailFrom string // envelope sender; "" for the null sender
	User     string // authenticated user; "" when none
	// Header is the message's header section (all of a headers-only
	// message): the From domain is read from it.
	Header []byte
	// Open returns a reader over the whole message (CRLF line endings).
	// DKIM signing reads it once per key, verification once when the
	// message carries signatures: a large message is streamed from its
	// spool, never held in memory.
	Open func() (io.ReadCloser, error)
}

// Verdict explains what the receiver will make of the message.
type Verdict struct {
	Mode           string   `json:"mode"`
	EnvelopeDomain string   `json:"envelope_domain"`
	FromDomain     string   `json:"from_domain"`
	SPF            string   `json:"spf"`     // pass, fail, softfail, neutral, none, permerror, temperror
	SPFIPs         []string `json:"spf_ips"` // the addresses judged
	SPFAssumed     bool     `json:"spf_assumed"`
	DKIM           string   `json:"dkim"`      // pass (an aligned signature), fail, none, temperror
	SignedBy       []string `json:"signed_by"` // our signatures: domain/selector(algo)
	Verified       []string `json:"verified"`  // domains of valid signatures already present
	DMARC          string   `json:"dmarc"`     // pass, fail, none, temperror
	Policy         string   `json:"policy"`    // effective p= (or sp=); "" without a record
	PolicyDomain   string   `json:"policy_domain"`
	Aligned        bool     `json:"aligned"`
	Reasons        []string `json:"reasons"`
	TempError      bool     `json:"temp_error"` // DNS failed and the outcome is uncertain
	Reject         bool     `json:"reject"`     // enforce mode refuses this message
}

func smtpErr(code int, enh smtp.EnhancedCode, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
}

// Check enforces allowed_from, signs the message with every key that aligns
// with its From domain, and (unless mode is off) judges SPF, DKIM and DMARC.
// It returns the DKIM-Signature fields to put in front of the message (nil
// when it is not signed) and the verdict. err is non-nil only
// for a refusal, and is then a bare *smtp.SMTPError: 553 5.7.1 for a domain
// the user may not send from (always enforced, it is access control), 550
// 5.7.1 when enforce mode predicts a DMARC failure, 451 4.4.3 when DNS
// failed and enforce mode cannot tell. In warn mode the verdict is logged and
// the message accepted.
func (c *Checker) Check(ctx context.Context, in Input) ([]byte, Verdict, error) {
	from := parseFrom(in.Header)
	v := Verdict{Mode: c.mode, EnvelopeDomain: addrDomain(in.MailFrom), FromDomain: from.Domain}

	if err := c.checkAllowedFrom(in, from, v.EnvelopeDomain); err != nil {
		c.count("denied_from")
		v.Reject = true
		v.Reasons = append(v.Reasons, err.Message)
		c.log.Warn("auth: sender domain not allowed", "user", in.User, "mail_from", in.MailFrom, "from_domain", from.Domain, "reason", err.Message)
		return nil, v, err
	}

	// Sign first: the stored message must be exactly what is sent, and our
	// own signature is what usually makes DMARC pass.
	var keys []signingKey
	if from.Problem == "" {
		keys = c.keysFor(from.Domain)
	}
	sigs, labels, err := sign(in.Open, keys)
	if err != nil {
		c.log.Error("auth: dkim signing failed", "from_domain", from.Domain, "err", err)
		c.count("tempfail")
		return nil, v, smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Local error while signing the message; try again later")
	}
	v.SignedBy = labels
	if len(labels) > 0 {
		c.count("signed")
	} else {
		c.count("unsigned")
	}

	if c.mode == ModeOff {
		c.count("off")
		return sigs, v, nil
	}
	c.judge(ctx, in, from, keys, &v)
	return sigs, v, c.outcome(v)
}

// checkAllowedFrom applies the user's allowed_from list to the envelope and
// From domains. It returns nil when the user is unrestricted.
func (c *Checker) checkAllowedFrom(in Input, from fromResult, envDomain string) *smtp.SMTPError {
	if in.User == "" {
		return nil
	}
	allowed := c.users[in.User]
	if len(allowed) == 0 {
		return nil
	}
	ok := func(d string) bool {
		return slices.ContainsFunc(allowed, func(a string) bool { return normDomain(a) == d })
	}
	if in.MailFrom != "" && !ok(envDomain) {
		return smtpErr(553, smtp.EnhancedCode{5, 7, 1}, fmt.Sprintf("User %s may not send from envelope domain %s (allowed_from: %s)", in.User, envDomain, strings.Join(allowed, ", ")))
	}
	if from.Problem != "" {
		return smtpErr(553, smtp.EnhancedCode{5, 7, 1}, fmt.Sprintf("User %s is restricted to allowed_from domains and %s", in.User, from.Problem))
	}
	if !ok(from.Domain) {
		return smtpErr(553, smtp.EnhancedCode{5, 7, 1}, fmt.Sprintf("User %s may not send From domain %s (allowed_from: %s)", in.User, from.Domain, strings.Join(allowed, ", ")))
	}
	return nil
}

// spfOutcome is the aggregate of SPF over all outbound addresses: mail may
// leave from any of them, so it passes only when every one passes.
type spfOutcome struct {
	result spf.Result
	ip     netip.Addr // the first address that did not pass
}

func (c *Checker) checkSPF(ctx context.Context, mailFrom, envDomain string) spfOutcome {
	if mailFrom == "" || len(c.ips) == 0 {
		return spfOutcome{result: spf.None}
	}
	out := spfOutcome{result: spf.Pass}
	for _, ip := range c.ips {
		res, _ := c.spf.check(ctx, ip, envDomain, mailFrom)
		if res == spf.Pass {
			continue
		}
		// A definitive failure outranks a temporary one: it will fail
		// whatever DNS does next.
		if out.result == spf.Pass || (out.result == spf.TempError && res != spf.TempError) {
			out = spfOutcome{result: res, ip: ip}
		}
	}
	return out
}

// judge fills in the SPF, DKIM and DMARC parts of the verdict.
func (c *Checker) judge(ctx context.Context, in Input, from fromResult, keys []signingKey, v *Verdict) {
	for _, ip := range c.ips {
		v.SPFIPs = append(v.SPFIPs, ip.String())
	}
	v.SPFAssumed = c.assumed
	if c.assumed {
		assumed := "none known"
		if len(c.ips) > 0 {
			assumed = c.ips[0].String()
		}
		v.Reasons = append(v.Reasons, "delivery.outbound_ips is empty; SPF judged on the assumed address: "+assumed)
	}

	so := c.checkSPF(ctx, in.MailFrom, v.EnvelopeDomain)
	v.SPF = string(so.result)

	// Signatures the application added (RFC 6376 §6). Verify the original
	// body: our own signatures are known good and need no DNS.
	dkimTemp := false
	vs, err := verifyExisting(ctx, c.dns, in)
	if err != nil {
		v.Reasons = append(v.Reasons, fmt.Sprintf("existing DKIM signatures could not be read: %v", err))
	}
	verified := map[string]bool{}
	for _, ver := range vs {
		switch {
		case ver.Err == nil:
			verified[normDomain(ver.Domain)] = true
		case ver.Temp:
			dkimTemp = true
			v.Reasons = append(v.Reasons, fmt.Sprintf("existing DKIM signature d=%s could not be checked: %v", ver.Domain, ver.Err))
		default:
			v.Reasons = append(v.Reasons, fmt.Sprintf("existing DKIM signature d=%s fails: %v", ver.Domain, ver.Err))
		}
	}
	v.Verified = sortedKeys(verified)

	if from.Problem != "" {
		v.DKIM = dkimSummary(len(keys) > 0 || len(verified) > 0, len(vs) > 0, dkimTemp)
		v.DMARC = "fail"
		v.Reject = true
		v.Reasons = append(v.Reasons, from.Problem+", so no signature or SPF result can align with it and receivers treat it as failing DMARC")
		return
	}

	pr := lookupPolicy(ctx, c.dns, from.Domain)
	v.Policy, v.PolicyDomain = pr.Policy, pr.FoundAt
	if pr.Err != nil && !pr.Temp {
		v.Reasons = append(v.Reasons, pr.Err.Error())
	}
	adkim, aspf := pr.ADKIM, pr.ASPF
	if adkim == "" {
		adkim, aspf = "r", "r"
	}

	spfAligned := so.result == spf.Pass && aligned(v.EnvelopeDomain, from.Domain, aspf)
	dkimAligned := false
	for _, k := range keys {
		dkimAligned = dkimAligned || aligned(k.Domain, from.Domain, adkim)
	}
	for d := range verified {
		dkimAligned = dkimAligned || aligned(d, from.Domain, adkim)
	}
	v.Aligned = spfAligned || dkimAligned
	v.DKIM = dkimSummary(dkimAligned, len(vs) > 0 || len(keys) > 0, dkimTemp)

	spfTemp := so.result == spf.TempError
	why := c.failureWhy(in, so, from.Domain, aspf, adkim, keys, verified)
	switch {
	case v.Aligned:
		v.DMARC = "pass"
	case pr.Temp:
		v.DMARC, v.TempError = "temperror", true
		v.Reasons = append(v.Reasons, pr.Err.Error())
	case pr.Record == nil:
		v.DMARC = "none"
		authenticated := so.result == spf.Pass || len(verified) > 0 || len(keys) > 0
		if !authenticated {
			// Large receivers refuse unauthenticated mail even without a
			// DMARC record (Gmail 4.7.26/4.7.27 in replies.md).
			msg := fmt.Sprintf("%s publishes no DMARC policy and this message is not authenticated: %s", from.Domain, why)
			if spfTemp || dkimTemp {
				v.TempError = true
			} else {
				v.Reject = true
			}
			v.Reasons = append(v.Reasons, msg)
		}
	default:
		v.DMARC = "fail"
		policyTag := "p"
		if pr.FoundAt != from.Domain && pr.Record.SubdomainPolicy != "" {
			policyTag = "sp"
		}
		msg := fmt.Sprintf("%s publishes %s=%s and this message would fail DMARC: %s", pr.FoundAt, policyTag, pr.Policy, why)
		v.Reasons = append(v.Reasons, msg)
		if pr.Policy == "reject" || pr.Policy == "quarantine" {
			// An SPF or DKIM temperror might have been a pass: do not
			// refuse for good on an answer we did not get.
			if spfTemp || dkimTemp {
				v.TempError = true
			} else {
				v.Reject = true
			}
		}
	}
}

func dkimSummary(alignedSig, anySig, temp bool) string {
	switch {
	case alignedSig:
		return "pass"
	case temp:
		return "temperror"
	case anySig:
		return "fail"
	}
	return "none"
}

// failureWhy explains, for the application developer, why neither SPF nor
// DKIM aligns, naming the thing to fix.
func (c *Checker) failureWhy(in Input, so spfOutcome, fromDomain, aspf, adkim string, keys []signingKey, verified map[string]bool) string {
	var spfWhy string
	env := addrDomain(in.MailFrom)
	switch {
	case in.MailFrom == "":
		spfWhy = "the null envelope sender has no SPF identity"
	case len(c.ips) == 0:
		spfWhy = "no outbound address is known to judge SPF (set delivery.outbound_ips)"
	case so.result == spf.Pass:
		spfWhy = fmt.Sprintf("SPF passes for %s but it is not aligned with %s (aspf=%s)", env, fromDomain, aspf)
	case so.result == spf.None:
		spfWhy = fmt.Sprintf("%s publishes no SPF record", env)
	case so.result == spf.PermError:
		spfWhy = fmt.Sprintf("the SPF record of %s is broken (permerror)", env)
	case so.result == spf.TempError:
		spfWhy = fmt.Sprintf("the SPF lookup for %s failed temporarily", env)
	default:
		spfWhy = fmt.Sprintf("SPF does not cover %s", so.ip)
	}
	var dkimWhy string
	switch {
	case len(keys) > 0:
		dkimWhy = fmt.Sprintf("our DKIM signature d=%s is not aligned with %s (adkim=%s)", keys[0].Domain, fromDomain, adkim)
	case len(verified) > 0:
		dkimWhy = fmt.Sprintf("the valid DKIM signature (d=%s) is not aligned with %s and there is no DKIM key for %s", strings.Join(sortedKeys(verified), ","), fromDomain, fromDomain)
	default:
		dkimWhy = "there is no DKIM key for " + fromDomain
	}
	return spfWhy + " and " + dkimWhy
}

// outcome counts and logs the verdict and turns it into the SMTP answer.
func (c *Checker) outcome(v Verdict) error {
	attrs := []any{"mode", v.Mode, "envelope_domain", v.EnvelopeDomain, "from_domain", v.FromDomain,
		"spf", v.SPF, "dkim", v.DKIM, "dmarc", v.DMARC, "policy", v.Policy, "aligned", v.Aligned,
		"signed_by", strings.Join(v.SignedBy, ","), "reasons", strings.Join(v.Reasons, "; ")}
	switch {
	case v.TempError && c.mode == ModeEnforce:
		c.count("tempfail")
		c.log.Warn("auth: deferred, DNS temporary failure", attrs...)
		return smtpErr(451, smtp.EnhancedCode{4, 4, 3}, fmt.Sprintf("Temporary DNS failure while checking sender authentication for %s; try again later", v.FromDomain))
	case v.Reject && c.mode == ModeEnforce:
		c.count("reject")
		c.log.Warn("auth: rejected", attrs...)
		return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, lastReason(v.Reasons))
	case v.TempError:
		c.count("tempfail_accepted")
		if ok, skipped := c.warns.Allow(v.FromDomain, c.now()); ok {
			c.log.Warn("auth: would defer (warn mode), accepted", append(attrs, "same_domain_not_logged", skipped)...)
		}
	case v.Reject:
		c.count("warn")
		if ok, skipped := c.warns.Allow(v.FromDomain, c.now()); ok {
			c.log.Warn("auth: would reject (warn mode), accepted", append(attrs, "same_domain_not_logged", skipped)...)
		}
	default:
		c.count("pass")
		c.log.Debug("auth: verdict", attrs...)
	}
	return nil
}

// lastReason is the decisive reason: judge appends it last.
func lastReason(r []string) string {
	if len(r) == 0 {
		return "Message would fail sender authentication"
	}
	return r[len(r)-1]
}
