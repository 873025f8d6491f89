package tlsrpt

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"sluice/resolver"
)

// DoctorReport is what `sluice doctor` says about a domain's own TLS-RPT
// record (RFC 8460 §3): where senders send the domain's TLS reports.
type DoctorReport struct {
	RUA      []string `json:"rua"`
	Notes    []string `json:"notes"`
	Problems []string `json:"problems"`
	Failures []string `json:"dns_failures"`
}

// Doctor reads domain's _smtp._tls record as a reporting sender would.
// No record is advice (no reports arrive); several, or one that does
// not parse or names no mailto:/https: destination, is a problem.
func Doctor(ctx context.Context, r Resolver, domain string) DoctorReport {
	rep := DoctorReport{RUA: []string{}, Notes: []string{}, Problems: []string{}, Failures: []string{}}
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	rua, err := Lookup(ctx, r, domain)
	var re *resolver.Error
	switch {
	case err == nil:
		for _, u := range rua {
			rep.RUA = append(rep.RUA, u.String())
		}
	case errors.As(err, &re):
		rep.Failures = append(rep.Failures, fmt.Sprintf("TXT _smtp._tls.%s: %v", domain, err))
	case errors.Is(err, ErrNoRecord) && strings.Contains(err.Error(), "(0 found)"):
		rep.Notes = append(rep.Notes, "no TLS-RPT record (_smtp._tls."+domain+" TXT \"v=TLSRPTv1; rua=mailto:...\"): senders cannot tell you when TLS to your MX fails (RFC 8460)")
	case errors.Is(err, ErrNoRecord):
		rep.Problems = append(rep.Problems, fmt.Sprintf("_smtp._tls.%s has several records beginning v=TLSRPTv1: senders then send no reports (RFC 8460 §3); keep one", domain))
	default:
		rep.Problems = append(rep.Problems, fmt.Sprintf("the _smtp._tls.%s record is not valid (RFC 8460 §3): %v", domain, err))
	}
	return rep
}

// Text renders the report as the TLS-RPT section of `sluice doctor`.
func (rep DoctorReport) Text() string {
	var b strings.Builder
	b.WriteString("TLS-RPT\n")
	switch {
	case len(rep.Failures) > 0:
		b.WriteString("  not checked: the _smtp._tls lookup failed\n")
	case len(rep.RUA) > 0:
		fmt.Fprintf(&b, "  rua\t%s\n", strings.Join(rep.RUA, ", "))
	case len(rep.Problems) > 0:
		b.WriteString("  rua\tNOT valid\n")
	default:
		b.WriteString("  rua\tnone\n")
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "  note\t%s\n", n)
	}
	return b.String()
}
