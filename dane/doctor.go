package dane

import (
	"context"
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// Report is what `sluice doctor` says about a domain's DANE records
// (RFC 7672): the domain's MX hosts, as senders that use DANE see them.
type Report struct {
	// Checked is false when the resolver's AD bit is not trusted
	// (delivery.resolver_dnssec off): DNSSEC status cannot be known.
	Checked  bool         `json:"checked"`
	MXSecure bool         `json:"mx_secure"` // the MX RRset is DNSSEC-validated (RFC 7672 §2.2.1)
	Hosts    []ReportHost `json:"hosts"`
	Problems []string     `json:"problems"` // to fix
	Failures []string     `json:"dns_failures"`
}

// ReportHost is one MX host.
type ReportHost struct {
	Host    string   `json:"host"`
	Status  string   `json:"status"` // "dane", "dane-unusable", "none"
	Base    string   `json:"tlsa_base,omitempty"`
	Records []string `json:"tlsa,omitempty"` // the usable ones
	Error   string   `json:"error,omitempty"`
}

// Doctor looks at domain's MX hosts (or the domain itself without MX
// records) as a DANE sender would. Publishing no DANE is no problem
// (DANE is optional); these are: a secure TLSA RRset with no usable
// record (PKIX usages, bad digests: RFC 7672 §3.1.3, such a host gets
// unauthenticated TLS only), a TLSA lookup that fails (DANE senders
// then cannot deliver to the host at all, §2.1.1), and TLSA records
// behind an unsigned MX RRset (no sender may use them, §2.2.1).
func Doctor(ctx context.Context, r Resolver, domain string, trustAD bool) Report {
	rep := Report{Checked: trustAD, Hosts: []ReportHost{}, Problems: []string{}, Failures: []string{}}
	if !trustAD {
		return rep
	}
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	mx, err := r.Lookup(ctx, domain, dns.TypeMX)
	if err != nil {
		rep.Failures = append(rep.Failures, fmt.Sprintf("MX %s: %v", domain, err))
		return rep
	}
	rep.MXSecure = mx.AD
	var hosts []string
	for _, rr := range mx.Records {
		if m, ok := rr.(*dns.MX); ok && m.Mx != "." {
			hosts = append(hosts, strings.TrimSuffix(strings.ToLower(m.Mx), "."))
		}
	}
	if len(hosts) == 0 && !mx.NXDomain {
		hosts = []string{domain} // implicit MX (RFC 5321 §5.1)
	}
	for _, h := range hosts {
		res, err := Lookup(ctx, r, h, Port, true)
		hr := ReportHost{Host: h, Status: res.Status.String(), Base: res.Base}
		switch {
		case err != nil:
			hr.Error = err.Error()
			rep.Failures = append(rep.Failures, err.Error())
			rep.Problems = append(rep.Problems, fmt.Sprintf("the TLSA lookup for %s fails: senders that use DANE cannot deliver to it (RFC 7672 §2.1.1); fix the zone's DNSSEC", h))
		case res.Status == EncryptOnly:
			rep.Problems = append(rep.Problems, fmt.Sprintf("the TLSA records of %s are all unusable for SMTP (PKIX-TA/PKIX-EE usages or bad digests, RFC 7672 §3.1.3): publish DANE-EE(3) or DANE-TA(2) records", h))
		case res.Status == Authenticate && !mx.AD:
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s has TLSA records but the MX records of %s are not DNSSEC-signed: no sender may use them (RFC 7672 §2.2.1); sign the zone", h, domain))
		}
		for _, rec := range res.Records {
			hr.Records = append(hr.Records, rec.String())
		}
		rep.Hosts = append(rep.Hosts, hr)
	}
	return rep
}

// Text renders the report as the DANE section of `sluice doctor`.
func (rep Report) Text() string {
	var b strings.Builder
	b.WriteString("DANE\n")
	if !rep.Checked {
		b.WriteString("  not checked: delivery.resolver_dnssec is off (the resolver's AD bit is not trusted)\n")
		return b.String()
	}
	sec := "DNSSEC-signed"
	if !rep.MXSecure {
		sec = "NOT DNSSEC-signed (DANE cannot apply)"
	}
	fmt.Fprintf(&b, "  MX records: %s\n", sec)
	for _, h := range rep.Hosts {
		state := h.Status
		switch {
		case h.Error != "":
			state = "lookup failed: " + h.Error
		case h.Status == "dane":
			state = "TLSA at _25._tcp." + h.Base + ": " + strings.Join(h.Records, "; ")
		case h.Status == "dane-unusable":
			state = "TLSA published, none usable"
		default:
			state = "no TLSA records"
		}
		fmt.Fprintf(&b, "  %s\t%s\n", h.Host, state)
	}
	return b.String()
}
