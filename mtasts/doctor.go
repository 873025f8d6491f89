package mtasts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/miekg/dns"
)

// DoctorReport is what `sluice doctor` says about a domain's own
// MTA-STS (RFC 8461): is there a _mta-sts record, does the policy fetch
// and parse, and do the domain's MX hosts match it.
type DoctorReport struct {
	Record   string   `json:"record,omitempty"` // the _mta-sts TXT record
	ID       string   `json:"id,omitempty"`
	Fetched  bool     `json:"fetched"`
	Mode     string   `json:"mode,omitempty"`
	MX       []string `json:"mx,omitempty"` // the policy's patterns
	MaxAge   int64    `json:"max_age,omitempty"`
	Hosts    []string `json:"hosts_outside,omitempty"` // MX hosts no pattern matches
	Notes    []string `json:"notes"`                   // advice that is not a problem
	Problems []string `json:"problems"`
	Failures []string `json:"dns_failures"`
}

// Doctor checks domain's MTA-STS as a sender would (RFC 8461 §3): the
// TXT record at _mta-sts.<domain> (exactly one beginning "v=STSv1",
// valid), the policy at https://mta-sts.<domain>/.well-known/mta-sts.txt
// fetched with c (full certificate validation, no redirects) and parsed
// strictly, and every MX host of the domain against the policy's
// patterns (§4.1: in enforce mode a host outside them gets no mail).
// Publishing no MTA-STS is no problem; half of it is.
func Doctor(ctx context.Context, r Resolver, c *http.Client, domain string) DoctorReport {
	rep := DoctorReport{Notes: []string{}, Problems: []string{}, Failures: []string{}}
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	a, err := r.Lookup(ctx, "_mta-sts."+domain, dns.TypeTXT)
	if err != nil {
		rep.Failures = append(rep.Failures, fmt.Sprintf("TXT _mta-sts.%s: %v", domain, err))
		return rep
	}
	var recs []string
	for _, rr := range a.Records {
		if t, ok := rr.(*dns.TXT); ok {
			if s := strings.Join(t.Txt, ""); strings.HasPrefix(s, "v=STSv1") {
				recs = append(recs, s)
			}
		}
	}
	switch len(recs) {
	case 0:
		rep.Notes = append(rep.Notes, "no MTA-STS record (_mta-sts."+domain+" TXT): senders that honour MTA-STS (RFC 8461) may deliver to you unverified")
		return rep
	case 1:
	default:
		rep.Problems = append(rep.Problems, fmt.Sprintf("_mta-sts.%s has %d records beginning v=STSv1: senders then see no policy (RFC 8461 §3.1); keep one", domain, len(recs)))
		return rep
	}
	rep.Record = recs[0]
	id, err := ParseRecord(recs[0])
	if err != nil {
		rep.Problems = append(rep.Problems, fmt.Sprintf("the _mta-sts.%s record does not parse (RFC 8461 §3.1): %v", domain, err))
		return rep
	}
	rep.ID = id
	p, err := Fetch(ctx, c, domain)
	if err != nil {
		what := "cannot be fetched"
		if errors.Is(err, ErrSyntax) {
			what = "does not parse"
		}
		rep.Problems = append(rep.Problems, fmt.Sprintf("the MTA-STS policy at %s %s: senders see no policy (RFC 8461 §3.3): %v", PolicyURL(domain), what, err))
		return rep
	}
	rep.Fetched, rep.Mode, rep.MX, rep.MaxAge = true, string(p.Mode), p.MX, int64(p.MaxAge.Seconds())
	if p.Mode == ModeNone {
		return rep
	}
	mx, err := r.Lookup(ctx, domain, dns.TypeMX)
	if err != nil {
		rep.Failures = append(rep.Failures, fmt.Sprintf("MX %s: %v", domain, err))
		return rep
	}
	for _, rr := range mx.Records {
		m, ok := rr.(*dns.MX)
		if !ok || m.Mx == "." {
			continue
		}
		h := strings.TrimSuffix(strings.ToLower(m.Mx), ".")
		if !p.Match(h) {
			rep.Hosts = append(rep.Hosts, h)
		}
	}
	if len(rep.Hosts) > 0 {
		effect := "senders that honour MTA-STS will not deliver to them"
		if p.Mode == ModeTesting {
			effect = "in enforce mode senders would not deliver to them"
		}
		rep.Problems = append(rep.Problems, fmt.Sprintf("MX hosts %s match no mx pattern of the MTA-STS policy of %s (RFC 8461 §4.1): %s; add them to the policy", strings.Join(rep.Hosts, ", "), domain, effect))
	}
	if p.Mode == ModeTesting {
		rep.Notes = append(rep.Notes, "the MTA-STS policy is in testing mode: senders report failures but deliver anyway; switch to enforce once the TLS reports are clean")
	}
	return rep
}

// Text renders the report as the MTA-STS section of `sluice doctor`.
func (rep DoctorReport) Text() string {
	var b strings.Builder
	b.WriteString("MTA-STS\n")
	switch {
	case rep.Record == "" && len(rep.Failures) > 0:
		b.WriteString("  not checked: the _mta-sts lookup failed\n")
	case rep.Record == "":
		b.WriteString("  record\tnone\n")
	default:
		fmt.Fprintf(&b, "  record\t%s\n", rep.Record)
		if rep.Fetched {
			fmt.Fprintf(&b, "  policy\tmode %s, max_age %d, mx %s\n", rep.Mode, rep.MaxAge, strings.Join(rep.MX, " "))
		} else {
			b.WriteString("  policy\tNOT fetched\n")
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "  note\t%s\n", n)
	}
	return b.String()
}
