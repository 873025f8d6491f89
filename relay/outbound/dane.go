package outbound

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"sluice/dane"
)

// DANESource is DANE for SMTP (RFC 7672) as a TLSSource: the TLSA
// records of the next hop, found by package dane through the daemon's
// resolver. It is built only when delivery.resolver_dnssec trusts the
// resolver's AD bit (the config layer allows that for a loopback
// resolver only).
type DANESource struct {
	Resolver dane.Resolver
	Now      func() time.Time // nil = time.Now; the DANE-TA chain check's clock
}

// TLSFor asks DANE about host, an MX host of domain. No secure MX RRset
// or no secure TLSA RRset: nothing to say (the
// next source decides). Usable records: verify against them (RFC 7672
// §3), the TLS-RPT policy type "tlsa" (RFC 8460 §4.4). Only unusable
// records: encrypt without authentication (RFC 7672 §2.2). A lookup
// without an answer is an error: the host is not used now (§2.1.1).
// The TLSA name carries the port mail goes to (25 on the Internet).
func (d *DANESource) TLSFor(ctx context.Context, domain, host string, port uint16) (TLSRequirement, bool, error) {
	res, err := dane.LookupMX(ctx, d.Resolver, domain, host, int(port), true)
	if err != nil {
		return TLSRequirement{}, false, err
	}
	req := TLSRequirement{Source: "dane", PolicyDomain: domain, PolicyType: "tlsa"}
	switch res.Status {
	case dane.Authenticate:
		now := d.Now
		if now == nil {
			now = time.Now
		}
		req.Mode = TLSVerify
		req.MXHosts = []string{host}
		for _, r := range res.Records {
			// RFC 8460 §4.4: for "tlsa", the TLSA RRset as presented.
			req.PolicyStrings = append(req.PolicyStrings, fmt.Sprintf("%d %d %d %x", r.Usage, r.Selector, r.Matching, r.Data))
		}
		req.Verify = func(cs tls.ConnectionState) error { return dane.Verify(res, cs.PeerCertificates, now()) }
		return req, true, nil
	case dane.EncryptOnly:
		req.Mode = TLSEncrypt
		return req, true, nil
	}
	return TLSRequirement{}, false, nil
}
