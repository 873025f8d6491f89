package auth

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"

	"blitiri.com.ar/go/spf"
)

// DoctorReport is the authentication posture of one sending domain, as
// `sluice doctor DOMAIN` shows it.
type DoctorReport struct {
	Domain      string       `json:"domain"`
	OutboundIPs []string     `json:"outbound_ips"`
	IPsAssumed  bool         `json:"outbound_ips_assumed"`
	SPF         DoctorSPF    `json:"spf"`
	DKIM        []DoctorDKIM `json:"dkim"`
	DMARC       DoctorDMARC  `json:"dmarc"`
	PTR         []DoctorPTR  `json:"ptr"`
	Problems    []string     `json:"problems"` // what to fix, empty when all is well
}

// DoctorSPF is the SPF record and its result for each outbound address.
type DoctorSPF struct {
	Record  string        `json:"record"`
	Error   string        `json:"error,omitempty"`
	Results []DoctorSPFIP `json:"results"`
}

// DoctorSPFIP is the SPF result for one outbound address.
type DoctorSPFIP struct {
	IP     string `json:"ip"`
	Result string `json:"result"`
}

// DoctorDKIM is one configured selector and what DNS publishes for it.
type DoctorDKIM struct {
	Domain    string `json:"domain"`
	Selector  string `json:"selector"`
	Name      string `json:"name"`
	Algorithm string `json:"algorithm"`
	Published bool   `json:"published"`
	Matches   bool   `json:"matches_key_file"`
	Expected  string `json:"expected_record"`
	Error     string `json:"error,omitempty"`
}

// DoctorDMARC is the governing DMARC record.
type DoctorDMARC struct {
	Record  string `json:"record"`
	FoundAt string `json:"found_at"`
	Policy  string `json:"policy"` // effective for Domain (sp= when found at the parent)
	ADKIM   string `json:"adkim"`
	ASPF    string `json:"aspf"`
	Error   string `json:"error,omitempty"`
}

// DoctorPTR is the reverse DNS of one outbound address.
type DoctorPTR struct {
	IP               string   `json:"ip"`
	Names            []string `json:"names"`
	ForwardConfirmed bool     `json:"forward_confirmed"`
	Error            string   `json:"error,omitempty"`
}

// Doctor inspects DNS for domain with the relay's options: SPF coverage of
// the outbound addresses, each DKIM selector's record against its key file,
// the DMARC policy, and forward-confirmed reverse DNS of the outbound
// addresses (receivers such as Gmail refuse mail without it). It returns an
// error only for unusable options (e.g. an unreadable key file); DNS
// findings go into the report.
func Doctor(ctx context.Context, o Options, domain string) (*DoctorReport, error) {
	// Diagnosis never refuses mail, so enforce without addresses is fine here.
	o.Mode = ModeWarn
	c, err := New(o)
	if err != nil {
		return nil, err
	}
	domain = normDomain(domain)
	r := &DoctorReport{Domain: domain, IPsAssumed: c.assumed, OutboundIPs: []string{}, DKIM: []DoctorDKIM{}, PTR: []DoctorPTR{}, Problems: []string{}}
	for _, ip := range c.ips {
		r.OutboundIPs = append(r.OutboundIPs, ip.String())
	}
	if c.assumed {
		r.Problems = append(r.Problems, "delivery.outbound_ips is empty: results are for an assumed address; set it (enforce mode requires it)")
	}
	c.doctorSPF(ctx, r)
	c.doctorDKIM(ctx, r)
	c.doctorDMARC(ctx, r)
	c.doctorPTR(ctx, r)
	return r, nil
}

func (c *Checker) doctorSPF(ctx context.Context, r *DoctorReport) {
	r.SPF.Results = []DoctorSPFIP{}
	txts, err := c.dns.LookupTXT(ctx, r.Domain)
	if err != nil && !isNotFoundDNS(err) {
		r.SPF.Error = err.Error()
	}
	for _, t := range txts {
		if l := strings.ToLower(t); l == "v=spf1" || strings.HasPrefix(l, "v=spf1 ") {
			r.SPF.Record = t
		}
	}
	if r.SPF.Record == "" && r.SPF.Error == "" {
		r.Problems = append(r.Problems, fmt.Sprintf("%s publishes no SPF record: add a TXT record \"v=spf1 ip4:... -all\" covering the outbound addresses", r.Domain))
	}
	for _, ip := range c.ips {
		res, _ := c.spf.check(ctx, ip, r.Domain, "postmaster@"+r.Domain)
		r.SPF.Results = append(r.SPF.Results, DoctorSPFIP{IP: ip.String(), Result: string(res)})
		if res != spf.Pass && r.SPF.Record != "" {
			r.Problems = append(r.Problems, fmt.Sprintf("SPF of %s does not cover %s (%s): add it to the record", r.Domain, ip, res))
		}
	}
}

func (c *Checker) doctorDKIM(ctx context.Context, r *DoctorReport) {
	for _, k := range c.keys {
		if k.Domain != r.Domain && !(k.Subdomains && strings.HasSuffix(r.Domain, "."+k.Domain)) {
			continue
		}
		d := DoctorDKIM{Domain: k.Domain, Selector: k.Selector, Name: k.Selector + "._domainkey." + k.Domain, Algorithm: k.algo}
		d.Expected, _ = publicKeyTXT(k.signer.Public())
		txts, err := c.dns.LookupTXT(ctx, d.Name)
		switch {
		case err != nil && isNotFoundDNS(err):
			d.Error = "not published"
		case err != nil:
			d.Error = err.Error()
		case len(txts) == 0:
			d.Error = "not published"
		default:
			d.Published = true
			// A long record arrives as several strings to be concatenated
			// (RFC 6376 §3.6.2.2); net.Resolver already joins them.
			pub, perr := parseKeyRecord(strings.Join(txts, ""))
			if perr != nil {
				d.Error = perr.Error()
			} else {
				d.Matches = samePublicKey(pub, k.signer.Public())
				if !d.Matches {
					d.Error = "published key differs from the key file"
				}
			}
		}
		if !d.Matches {
			r.Problems = append(r.Problems, fmt.Sprintf("DKIM selector %s: %s; publish TXT %s \"%s\"", d.Name, d.Error, d.Name, d.Expected))
		}
		r.DKIM = append(r.DKIM, d)
	}
	if len(r.DKIM) == 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("no DKIM key is configured for %s: run `sluice dkim keygen --domain %s --selector S` and add [[auth.dkim]]", r.Domain, r.Domain))
	}
}

func (c *Checker) doctorDMARC(ctx context.Context, r *DoctorReport) {
	pr := lookupPolicy(ctx, c.dns, r.Domain)
	r.DMARC = DoctorDMARC{FoundAt: pr.FoundAt, Policy: pr.Policy, ADKIM: pr.ADKIM, ASPF: pr.ASPF}
	if pr.Err != nil {
		r.DMARC.Error = pr.Err.Error()
	}
	if pr.Record == nil {
		if pr.Err == nil {
			r.Problems = append(r.Problems, fmt.Sprintf("%s publishes no DMARC record: add TXT _dmarc.%s \"v=DMARC1; p=none\" at least", r.Domain, OrgDomain(r.Domain)))
		}
		return
	}
	txts, _ := c.dns.LookupTXT(ctx, "_dmarc."+pr.FoundAt)
	for _, t := range txts {
		if strings.HasPrefix(t, "v=DMARC1") {
			r.DMARC.Record = t
		}
	}
}

func (c *Checker) doctorPTR(ctx context.Context, r *DoctorReport) {
	for _, ip := range c.ips {
		p := DoctorPTR{IP: ip.String(), Names: []string{}}
		names, err := c.dns.LookupAddr(ctx, ip.String())
		if err != nil {
			p.Error = err.Error()
		}
		for _, n := range names {
			p.Names = append(p.Names, strings.TrimSuffix(n, "."))
			p.ForwardConfirmed = p.ForwardConfirmed || c.resolvesTo(ctx, n, ip)
		}
		if !p.ForwardConfirmed {
			r.Problems = append(r.Problems, fmt.Sprintf("%s has no forward-confirmed PTR: set its reverse DNS to a name that resolves back to it", ip))
		}
		r.PTR = append(r.PTR, p)
	}
}

func (c *Checker) resolvesTo(ctx context.Context, name string, ip netip.Addr) bool {
	addrs, err := c.dns.LookupIPAddr(ctx, name)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip.Unmap() {
			return true
		}
	}
	return false
}

func samePublicKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// Text renders the report for humans, one section per check.
func (r *DoctorReport) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Domain: %s\n", r.Domain)
	ips := strings.Join(r.OutboundIPs, ", ")
	if ips == "" {
		ips = "none known"
	}
	if r.IPsAssumed {
		ips += " (assumed: delivery.outbound_ips is empty)"
	}
	fmt.Fprintf(&b, "Outbound IPs: %s\n\n", ips)

	fmt.Fprintf(&b, "SPF\n  record: %s\n", orDash(r.SPF.Record))
	if r.SPF.Error != "" {
		fmt.Fprintf(&b, "  error: %s\n", r.SPF.Error)
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, s := range r.SPF.Results {
		fmt.Fprintf(tw, "  %s\t%s\n", s.IP, s.Result)
	}
	tw.Flush()

	b.WriteString("\nDKIM\n")
	if len(r.DKIM) == 0 {
		b.WriteString("  no key configured\n")
	}
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, d := range r.DKIM {
		state := "ok"
		if !d.Matches {
			state = d.Error
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", d.Name, d.Algorithm, state)
	}
	tw.Flush()

	fmt.Fprintf(&b, "\nDMARC\n  record: %s\n", orDash(r.DMARC.Record))
	if r.DMARC.Record != "" {
		fmt.Fprintf(&b, "  found at: _dmarc.%s\n  policy: %s  adkim=%s  aspf=%s\n", r.DMARC.FoundAt, r.DMARC.Policy, r.DMARC.ADKIM, r.DMARC.ASPF)
	}
	if r.DMARC.Error != "" {
		fmt.Fprintf(&b, "  error: %s\n", r.DMARC.Error)
	}

	b.WriteString("\nPTR\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, p := range r.PTR {
		fc := "forward-confirmed"
		if !p.ForwardConfirmed {
			fc = "NOT forward-confirmed"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", p.IP, orDash(strings.Join(p.Names, ",")), fc)
	}
	tw.Flush()

	b.WriteString("\n")
	if len(r.Problems) == 0 {
		b.WriteString("No problems found.\n")
	} else {
		b.WriteString("To fix:\n")
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  - %s\n", p)
		}
	}
	return b.String()
}

// JSON renders the report for scripts.
func (r *DoctorReport) JSON() ([]byte, error) {
	return json.MarshalIndent(r, "", "  ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
