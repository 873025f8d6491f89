package auth

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"

	"blitiri.com.ar/go/spf"

	"sluice/dane"
	"sluice/mtasts"
	"sluice/tlsrpt"
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
	// DNSFailures lists the lookups that failed (timeout, SERVFAIL,
	// refused...). When it is not empty the report is incomplete: no
	// advice is given that assumes a record is absent, as it may exist.
	DNSFailures []string `json:"dns_failures"`
	// DomainNotFound: the domain has no MX, no A/AAAA and no TXT record
	// (NXDOMAIN, or a name with nothing a mail domain needs). The other
	// checks of the domain are skipped: there is nothing to add records to.
	DomainNotFound bool `json:"domain_not_found"`
	// DANE is the DANE posture of the domain's MX hosts (AddDANE); nil
	// when not looked at.
	DANE *dane.Report `json:"dane,omitempty"`
	// MTASTS and TLSRPT are the domain's own MTA-STS policy and TLS-RPT
	// record (AddMTASTS, AddTLSRPT); nil when not looked at.
	MTASTS *mtasts.DoctorReport `json:"mta_sts,omitempty"`
	TLSRPT *tlsrpt.DoctorReport `json:"tls_rpt,omitempty"`
}

// AddMTASTS adds the MTA-STS section (as AddDANE).
func (r *DoctorReport) AddMTASTS(d mtasts.DoctorReport) {
	r.MTASTS = &d
	r.addSection(d.Problems, d.Failures)
}

// AddTLSRPT adds the TLS-RPT section (as AddDANE).
func (r *DoctorReport) AddTLSRPT(d tlsrpt.DoctorReport) {
	r.TLSRPT = &d
	r.addSection(d.Problems, d.Failures)
}

func (r *DoctorReport) addSection(problems, failures []string) {
	r.Problems = append(r.Problems, problems...)
	for _, f := range failures {
		if !slices.Contains(r.DNSFailures, f) {
			r.DNSFailures = append(r.DNSFailures, f)
		}
	}
}

// AddDANE adds the DANE section: its problems join the list to fix, and
// its failed lookups make the report incomplete (Err).
func (r *DoctorReport) AddDANE(d dane.Report) {
	r.DANE = &d
	r.addSection(d.Problems, d.Failures)
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
	LookupFailed     bool     `json:"lookup_failed"` // a lookup failed: not confirmed may be wrong
	Error            string   `json:"error,omitempty"`
}

// Doctor inspects DNS for domain with the relay's options: SPF coverage of
// the outbound addresses, each DKIM selector's record against its key file,
// the DMARC policy, and forward-confirmed reverse DNS of the outbound
// addresses (receivers such as Gmail refuse mail without it). It returns an
// error only for unusable options (e.g. an unreadable key file); DNS
// findings, failed lookups included, go into the report (see Err).
func Doctor(ctx context.Context, o Options, domain string) (*DoctorReport, error) {
	// Diagnosis never refuses mail, so enforce without addresses is fine here.
	o.Mode = ModeWarn
	c, err := New(o)
	if err != nil {
		return nil, err
	}
	domain = normDomain(domain)
	r := &DoctorReport{Domain: domain, IPsAssumed: c.assumed, OutboundIPs: []string{}, DKIM: []DoctorDKIM{}, PTR: []DoctorPTR{},
		Problems: []string{}, DNSFailures: []string{}, SPF: DoctorSPF{Results: []DoctorSPFIP{}}}
	for _, ip := range c.ips {
		r.OutboundIPs = append(r.OutboundIPs, ip.String())
	}
	if c.assumed {
		r.Problems = append(r.Problems, "delivery.outbound_ips is empty: results are for an assumed address; set it (enforce mode requires it)")
	}
	if c.doctorExists(ctx, r) {
		c.doctorSPF(ctx, r)
		c.doctorDKIM(ctx, r)
		c.doctorDMARC(ctx, r)
	}
	c.doctorPTR(ctx, r)
	return r, nil
}

// Err is non-nil when the report cannot be trusted as a list of things to
// fix: some lookups failed, or the domain does not exist. `sluice doctor`
// then exits non-zero.
func (r *DoctorReport) Err() error {
	switch {
	case len(r.DNSFailures) > 0:
		return fmt.Errorf("%d DNS lookup(s) failed; the report for %s is incomplete", len(r.DNSFailures), r.Domain)
	case r.DomainNotFound:
		return fmt.Errorf("%s does not exist in DNS", r.Domain)
	}
	return nil
}

// lookupFailed records a lookup that failed for another reason than "no
// such name or record" and reports whether it did. Only such a failure
// makes the report uncertain: not found is an answer.
func (r *DoctorReport) lookupFailed(kind, name string, err error) bool {
	if err == nil || isNotFoundDNS(err) {
		return false
	}
	msg := err.Error()
	var de *net.DNSError
	if errors.As(err, &de) {
		msg = de.Err
	}
	f := fmt.Sprintf("%s %s: %s", kind, strings.TrimSuffix(name, "."), msg)
	if !slices.Contains(r.DNSFailures, f) {
		r.DNSFailures = append(r.DNSFailures, f)
	}
	return true
}

// doctorExists reports whether the domain is there to be checked. A domain
// with no MX, no A/AAAA and no TXT record is one that receivers refuse as
// an unknown sender domain (Postfix reject_unknown_sender_domain looks for
// MX or A; RFC 5321 §5.1), so listing SPF/DKIM/DMARC records to publish
// would only mislead: the name is probably wrong. The Resolver interface,
// like net.Resolver, reports NXDOMAIN and "no record of this type" alike,
// so "not found" is judged on all three types. When a lookup fails and
// none succeeds, existence is unknown and the checks run (and report the
// failures).
func (c *Checker) doctorExists(ctx context.Context, r *DoctorReport) bool {
	_, errTXT := c.dns.LookupTXT(ctx, r.Domain)
	_, errMX := c.dns.LookupMX(ctx, r.Domain)
	_, errIP := c.dns.LookupIPAddr(ctx, r.Domain)
	if isNotFoundDNS(errTXT) && isNotFoundDNS(errMX) && isNotFoundDNS(errIP) {
		r.DomainNotFound = true
		r.Problems = append(r.Problems, fmt.Sprintf("%s does not exist in DNS (no MX, A/AAAA or TXT record): check the domain name; receivers refuse mail from a domain that does not resolve", r.Domain))
		return false
	}
	r.lookupFailed("TXT", r.Domain, errTXT)
	r.lookupFailed("MX", r.Domain, errMX)
	r.lookupFailed("A/AAAA", r.Domain, errIP)
	return true
}

func (c *Checker) doctorSPF(ctx context.Context, r *DoctorReport) {
	txts, err := c.dns.LookupTXT(ctx, r.Domain)
	if r.lookupFailed("TXT", r.Domain, err) {
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
		res, err := c.spf.check(ctx, ip, r.Domain, "postmaster@"+r.Domain)
		r.SPF.Results = append(r.SPF.Results, DoctorSPFIP{IP: ip.String(), Result: string(res)})
		if res == spf.TempError {
			// A lookup inside the evaluation (include:, a:, mx:...) failed:
			// the address may well be covered.
			if err == nil {
				err = errors.New("temporary error")
			}
			r.lookupFailed("SPF evaluation for", ip.String(), err)
			continue
		}
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
		case r.lookupFailed("TXT", d.Name, err):
			// Maybe published: no advice to publish it.
			d.Error = err.Error()
			r.DKIM = append(r.DKIM, d)
			continue
		case err != nil:
			d.Error = "not published"
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
	if pr.Temp {
		// go-msgauth's DMARC error hides the DNS one; ask again for it.
		name := "_dmarc." + pr.FoundAt
		if _, err := c.dns.LookupTXT(ctx, name); !r.lookupFailed("TXT", name, err) {
			r.lookupFailed("TXT", name, pr.Err)
		}
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
		failed := r.lookupFailed("PTR", ip.String(), err)
		for _, n := range names {
			p.Names = append(p.Names, strings.TrimSuffix(n, "."))
			ok, err := c.resolvesTo(ctx, n, ip)
			p.ForwardConfirmed = p.ForwardConfirmed || ok
			failed = r.lookupFailed("A/AAAA", n, err) || failed
		}
		p.LookupFailed = failed
		// A failed lookup may hide a good PTR: no advice to set one.
		if !p.ForwardConfirmed && !failed {
			r.Problems = append(r.Problems, fmt.Sprintf("%s has no forward-confirmed PTR: set its reverse DNS to a name that resolves back to it", ip))
		}
		r.PTR = append(r.PTR, p)
	}
}

// resolvesTo reports whether name has ip among its addresses, and the
// lookup's error.
func (c *Checker) resolvesTo(ctx context.Context, name string, ip netip.Addr) (bool, error) {
	addrs, err := c.dns.LookupIPAddr(ctx, name)
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip.Unmap() {
			return true, nil
		}
	}
	return false, nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// Text renders the report for humans, one section per check.
func (r *DoctorReport) Text() string {
	var b strings.Builder
	// Failures first: everything below is read in their light.
	if len(r.DNSFailures) > 0 {
		fmt.Fprintf(&b, "DNS lookups failed: %s; the advice below could not be checked.\n\n", strings.Join(r.DNSFailures, "; "))
	}
	if r.DomainNotFound {
		fmt.Fprintf(&b, "%s does not exist in DNS (no MX, A/AAAA or TXT record).\n\n", r.Domain)
	}
	fmt.Fprintf(&b, "Domain: %s\n", r.Domain)
	ips := strings.Join(r.OutboundIPs, ", ")
	if ips == "" {
		ips = "none known"
	}
	if r.IPsAssumed {
		ips += " (assumed: delivery.outbound_ips is empty)"
	}
	fmt.Fprintf(&b, "Outbound IPs: %s\n\n", ips)

	if r.DomainNotFound {
		b.WriteString("SPF, DKIM, DMARC\n  not checked: the domain does not exist\n")
	} else {
		r.textAuth(&b)
	}
	b.WriteString("\nPTR\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, p := range r.PTR {
		fc := "forward-confirmed"
		switch {
		case p.ForwardConfirmed:
		case p.LookupFailed:
			fc = "not checked: lookup failed"
		default:
			fc = "NOT forward-confirmed"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", p.IP, orDash(strings.Join(p.Names, ",")), fc)
	}
	tw.Flush()
	if r.DANE != nil {
		b.WriteString("\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		tw.Write([]byte(r.DANE.Text()))
		tw.Flush()
	}
	var secs []string
	if r.MTASTS != nil {
		secs = append(secs, r.MTASTS.Text())
	}
	if r.TLSRPT != nil {
		secs = append(secs, r.TLSRPT.Text())
	}
	for _, sec := range secs {
		b.WriteString("\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		tw.Write([]byte(sec))
		tw.Flush()
	}

	b.WriteString("\n")
	switch {
	case len(r.Problems) == 0 && len(r.DNSFailures) > 0:
		b.WriteString("Nothing to fix among what could be checked; run again when DNS answers.\n")
	case len(r.Problems) == 0:
		b.WriteString("No problems found.\n")
	default:
		b.WriteString("To fix:\n")
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  - %s\n", p)
		}
	}
	return b.String()
}

// textAuth renders the SPF, DKIM and DMARC sections.
func (r *DoctorReport) textAuth(b *strings.Builder) {
	fmt.Fprintf(b, "SPF\n  record: %s\n", orDash(r.SPF.Record))
	if r.SPF.Error != "" {
		fmt.Fprintf(b, "  error: %s\n", r.SPF.Error)
	}
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, s := range r.SPF.Results {
		fmt.Fprintf(tw, "  %s\t%s\n", s.IP, s.Result)
	}
	tw.Flush()

	b.WriteString("\nDKIM\n")
	if len(r.DKIM) == 0 {
		b.WriteString("  no key configured\n")
	}
	tw = tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, d := range r.DKIM {
		state := "ok"
		if !d.Matches {
			state = d.Error
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", d.Name, d.Algorithm, state)
	}
	tw.Flush()

	fmt.Fprintf(b, "\nDMARC\n  record: %s\n", orDash(r.DMARC.Record))
	if r.DMARC.Record != "" {
		fmt.Fprintf(b, "  found at: _dmarc.%s\n  policy: %s  adkim=%s  aspf=%s\n", r.DMARC.FoundAt, r.DMARC.Policy, r.DMARC.ADKIM, r.DMARC.ASPF)
	}
	if r.DMARC.Error != "" {
		fmt.Fprintf(b, "  error: %s\n", r.DMARC.Error)
	}
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
