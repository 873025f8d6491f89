package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/emersion/go-msgauth/dmarc"
)

// policyResult is the DMARC record that governs a From domain.
type policyResult struct {
	Record  *dmarc.Record // nil when no policy was found
	FoundAt string        // the domain whose _dmarc record applies
	Policy  string        // effective policy: none | quarantine | reject; "" when no record
	ADKIM   string        // "r" or "s"
	ASPF    string        // "r" or "s"
	Temp    bool          // the lookup failed temporarily
	Err     error         // lookup or parse failure, for the reasons
}

// lookupPolicy finds the DMARC record for fromDomain (RFC 7489 §6.6.3): at
// _dmarc.<fromDomain>, else at the organisational domain, where the sp= tag,
// when present, is the policy for subdomains.
func lookupPolicy(ctx context.Context, d *dnsCache, fromDomain string) policyResult {
	opts := &dmarc.LookupOptions{LookupTXT: d.txtFunc(ctx)}
	tryDomains := []string{fromDomain}
	if org := OrgDomain(fromDomain); org != fromDomain {
		tryDomains = append(tryDomains, org)
	}
	for _, dom := range tryDomains {
		rec, err := dmarc.LookupWithOptions(dom, opts)
		switch {
		case err == nil:
			pr := policyResult{Record: rec, FoundAt: dom, Policy: string(rec.Policy), ADKIM: "r", ASPF: "r"}
			if dom != fromDomain && rec.SubdomainPolicy != "" {
				pr.Policy = string(rec.SubdomainPolicy)
			}
			if rec.DKIMAlignment == dmarc.AlignmentStrict {
				pr.ADKIM = "s"
			}
			if rec.SPFAlignment == dmarc.AlignmentStrict {
				pr.ASPF = "s"
			}
			return pr
		case errors.Is(err, dmarc.ErrNoPolicy):
			continue
		case dmarc.IsTempFail(err):
			return policyResult{FoundAt: dom, Temp: true, Err: fmt.Errorf("DMARC lookup for %s failed temporarily: %w", dom, err)}
		default:
			// A record that exists but does not parse: RFC 7489 §6.6.3
			// says to proceed as if there were none; report it anyway.
			return policyResult{FoundAt: dom, Err: fmt.Errorf("DMARC record of %s is invalid: %w", dom, err)}
		}
	}
	return policyResult{}
}
