package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"sluice/reply"
)

// TLS modes for outbound connections (issue 14): one value set for
// delivery.tls, [[delivery.tls_policy]], routes and the smarthost.
//
//   - none: never STARTTLS.
//   - may: STARTTLS when offered, without verification; a failed
//     handshake falls back to plaintext (RFC 7435 §4: encryption
//     without authentication beats cleartext).
//   - encrypt: TLS is required, the certificate is not verified.
//   - verify: TLS is required and the certificate must verify (PKIX,
//     against the system roots plus delivery.ca_file) for the host name.
//   - dane: DANE is required (RFC 7672): the next hop must have usable
//     TLSA records and match them; no TLSA is a policy failure.
//   - mta-sts: an MTA-STS policy is required (RFC 8461) and enforced
//     even when the domain publishes it in testing mode; no policy is a
//     policy failure.
//
// opportunistic and require are the names of may and encrypt before
// issue 14 and stay accepted as aliases.
const (
	TLSNone    = "none"
	TLSMay     = "may"
	TLSEncrypt = "encrypt"
	TLSVerify  = "verify"
	TLSDANE    = "dane"
	TLSMTASTS  = "mta-sts"

	TLSOpportunistic = "opportunistic" // alias of may
	TLSRequire       = "require"       // alias of encrypt
)

// CanonicalTLSMode maps the aliases onto their modes and returns any
// other string unchanged.
func CanonicalTLSMode(m string) string {
	switch m {
	case TLSOpportunistic:
		return TLSMay
	case TLSRequire:
		return TLSEncrypt
	}
	return m
}

// TLSRequirement is what one source in the precedence demands of the
// TLS session with one next hop.
type TLSRequirement struct {
	// Mode is what the session must achieve: none, may, encrypt or
	// verify (dane and mta-sts resolve to verify with their Source).
	Mode string
	// Source names who decided, for logs and the admin view:
	// "tls_policy", "route", "smarthost", "dane", "mta-sts",
	// "delivery.tls".
	Source string
	// PolicyDomain and PolicyType are where an outcome is recorded
	// (TLSResults; RFC 8460 §4.4: policy-domain, policy-type "sts",
	// "tlsa" or "no-policy-found").
	PolicyDomain string
	PolicyType   string
	// PolicyStrings and MXHosts describe the policy for the report
	// (RFC 8460 §4.4 "policy-string", "mx-host"): an MTA-STS policy's
	// lines and MX patterns, a TLSA RRset and its host. Never modified
	// once set (the tally keeps them without copying).
	PolicyStrings, MXHosts []string
	// ServerName is sent as SNI and, for verify without Verify, is the
	// name the certificate must be valid for; "" = the hop's host name.
	ServerName string
	// Verify, when set, replaces PKIX verification: DANE matches the
	// peer's chain against TLSA records (RFC 7672 §3), not the name.
	Verify func(cs tls.ConnectionState) error
	// ReportOnly: a failure is logged and recorded, and delivery goes
	// on as under may (an MTA-STS policy in testing mode, RFC 8461 §5).
	ReportOnly bool
	// unreported: the session carries sluice's own TLS-RPT reports
	// (WithoutTLSReport); its outcome is not tallied.
	unreported bool
}

type unreportedKey struct{}

// WithoutTLSReport marks a Dial whose session carries sluice's own
// TLS-RPT reports: its TLS outcome is left out of the tally, so that a
// report never becomes the subject of the next one (RFC 8460 §3). The
// TLS policy itself applies unchanged.
func WithoutTLSReport(ctx context.Context) context.Context {
	return context.WithValue(ctx, unreportedKey{}, true)
}

func unreported(ctx context.Context) bool { v, _ := ctx.Value(unreportedKey{}).(bool); return v }

// TLSSource is one automatic source in the precedence (DANE, MTA-STS):
// the outbound client asks it per next hop "which mode and which
// verification applies". ok = false: the source has nothing to say (no
// TLSA records, no MTA-STS policy) and the next source is asked. An
// error means this host must not be used now (a TLSA lookup that
// failed, RFC 7672 §2.1.1; an MX host outside an enforced MTA-STS
// policy, RFC 8461 §4.1): it becomes a tls-policy failure of the hop,
// and the next MX is tried.
type TLSSource interface {
	TLSFor(ctx context.Context, domain, host string, port uint16) (req TLSRequirement, ok bool, err error)
}

// PolicyFailure is an error a TLSSource may return to say how the
// failure is recorded (TLSResults; RFC 8460 §4.3): MTA-STS's MX host
// outside an enforced policy is Type "sts", Result "validation-failure".
type PolicyFailure struct {
	Type, Result           string
	PolicyStrings, MXHosts []string // the policy failed, as in TLSRequirement
	Err                    error
}

func (e *PolicyFailure) Error() string { return e.Err.Error() }
func (e *PolicyFailure) Unwrap() error { return e.Err }

// policyError wraps err as a tls-policy failure of a hop.
func policyError(stage reply.Stage, h Hop, err error) *reply.Reply {
	return &reply.Reply{Stage: stage, Err: fmt.Errorf("%w: %s[%s]: %w", reply.ErrTLSPolicy, h.Host, h.Addr.Addr(), err)}
}

// requirement is the TLS policy for one hop of domain, by precedence
// (issue 14): a [[delivery.tls_policy]] entry, then the route's or the
// smarthost's mode, then DANE (usable TLSA records), then MTA-STS (a
// policy exists), then delivery.tls.
func (o *Client) requirement(ctx context.Context, domain string, h Hop) (TLSRequirement, error) {
	if m, ok := o.opt.TLSPolicies[domain]; ok {
		return o.fromMode(ctx, domain, h, m, "tls_policy")
	}
	if h.Via != "" {
		return o.fromMode(ctx, domain, h, h.TLS, h.Via)
	}
	for _, src := range []TLSSource{o.opt.DANE, o.opt.MTASTS} {
		if src == nil {
			continue
		}
		req, ok, err := src.TLSFor(ctx, domain, h.Host, h.Addr.Port())
		if err != nil {
			return TLSRequirement{}, err
		}
		if ok {
			return req, nil
		}
	}
	return o.fromMode(ctx, domain, h, o.opt.TLS, "delivery.tls")
}

// fromMode is the requirement of an explicit mode. dane and mta-sts
// are mandatory when named: the source must have a policy for the hop.
func (o *Client) fromMode(ctx context.Context, domain string, h Hop, mode, source string) (TLSRequirement, error) {
	var src TLSSource
	switch mode {
	case TLSNone, TLSMay, TLSEncrypt, TLSVerify:
		return TLSRequirement{Mode: mode, Source: source, PolicyDomain: domain, PolicyType: "no-policy-found"}, nil
	case TLSDANE:
		src = o.opt.DANE
	case TLSMTASTS:
		src = o.opt.MTASTS
	default:
		return TLSRequirement{}, fmt.Errorf("unknown TLS mode %q", mode)
	}
	if src == nil {
		return TLSRequirement{}, fmt.Errorf("%s requires %s, which is not enabled", source, mode)
	}
	req, ok, err := src.TLSFor(ctx, domain, h.Host, h.Addr.Port())
	if err != nil {
		return TLSRequirement{}, err
	}
	if !ok {
		return TLSRequirement{}, fmt.Errorf("%s requires %s and none is published for %s", source, mode, domain)
	}
	// Named by the operator, the policy is enforced even when the
	// domain only tests it (never a silent downgrade).
	req.ReportOnly = false
	req.Source = source + ":" + mode
	return req, nil
}

// verifyPeer checks the handshake's peer against req: PKIX for the
// server name (RFC 6125 via crypto/x509, as RFC 8461 §4.2 asks), or
// req.Verify (DANE). may and encrypt never verify.
func (o *Client) verifyPeer(req TLSRequirement, serverName string, cs tls.ConnectionState) error {
	if req.Mode != TLSVerify {
		return nil
	}
	if req.Verify != nil {
		return req.Verify(cs)
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate presented")
	}
	opts := x509.VerifyOptions{DNSName: serverName, Intermediates: x509.NewCertPool(), CurrentTime: o.now()}
	if o.opt.TLSConfig != nil {
		opts.Roots = o.opt.TLSConfig.RootCAs
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(opts)
	return err
}

// sameRequirement reports whether a session opened under a may carry
// mail whose hop requirement is b: the same mode, source kind and
// verification, so that a domain with a stricter policy never rides a
// session opened for a laxer one.
func sameRequirement(a, b TLSRequirement) bool {
	return a.Mode == b.Mode && a.Source == b.Source && a.ReportOnly == b.ReportOnly &&
		a.ServerName == b.ServerName && a.PolicyType == b.PolicyType && (a.Verify == nil) == (b.Verify == nil)
}

// reportSource is the Source of the requirement a TLS-RPT report's own
// session is opened under (reportRequirement).
const reportSource = "tlsrpt"

// reportRequirement is the requirement of a session that carries
// sluice's own TLS-RPT report (WithoutTLSReport): RFC 8460 §3 says
// "sending MTAs MUST deliver reports despite any TLS-related failures"
// of the receiver's published policies, so DANE and MTA-STS are not
// asked (their failures are what the report is about) and the session
// goes under may: TLS when offered, unverified, plaintext when the
// handshake fails. A mode the operator named for the domain (a
// tls_policy entry, a route, the smarthost) still applies: that is a
// local decision, not a receiver's policy. The session is single-use
// (Session.single): it never carries other mail to the domain.
func (o *Client) reportRequirement(ctx context.Context, domain string, h Hop) (TLSRequirement, error) {
	if _, ok := o.opt.TLSPolicies[domain]; ok || h.Via != "" {
		return o.requirement(ctx, domain, h)
	}
	return TLSRequirement{Mode: TLSMay, Source: reportSource, PolicyDomain: domain, PolicyType: "no-policy-found"}, nil
}
