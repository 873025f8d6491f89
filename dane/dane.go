// Package dane is DANE for SMTP (RFC 7672): it finds the TLSA records of
// a next hop through the project's resolver and checks the certificate
// chain a server presents against them.
//
// Promises:
//   - DNSSEC is trusted only when the caller says so (TrustAD, from
//     delivery.resolver_dnssec, which the config layer accepts only for a
//     resolver on loopback: RFC 7672 §2.1.3, the AD bit is only as good as
//     the path to the validating resolver).
//   - DANE applies to an MX host only when the domain's MX RRset is
//     secure (RFC 7672 §2.2.1, LookupMX), and to a host only when its
//     address records are secure,
//     CNAME chain included (RFC 7672 §2.2.2, §2.2.3): an MX host name
//     reached through an insecure CNAME gets no TLSA lookup at all.
//   - A secure TLSA RRset with a usable record makes authenticated TLS
//     mandatory (Authenticate); one whose records are all unusable makes
//     TLS mandatory without authentication (EncryptOnly, RFC 7672 §2.2);
//     no secure TLSA RRset means DANE does not apply (None).
//   - A TLSA lookup that gets no answer (SERVFAIL, a bogus RRset, a
//     timeout) is an error: the host must not be used until it can be
//     had, never downgraded to unauthenticated delivery (RFC 7672 §2.1.1).
package dane

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"sluice/resolver"
)

// TLSA parameters (RFC 6698 §2.1, registry names from RFC 7218).
const (
	UsagePKIXTA = 0
	UsagePKIXEE = 1
	UsageDANETA = 2
	UsageDANEEE = 3

	SelectorCert = 0 // the full certificate, DER
	SelectorSPKI = 1 // its SubjectPublicKeyInfo, DER

	MatchFull   = 0
	MatchSHA256 = 1
	MatchSHA512 = 2
)

// Record is one TLSA record.
type Record struct {
	Usage, Selector, Matching uint8
	Data                      []byte // the certificate association data
}

func (r Record) String() string {
	return fmt.Sprintf("%d %d %d %x", r.Usage, r.Selector, r.Matching, r.Data)
}

// FromRR converts a TLSA resource record; ok is false when its data is
// not hexadecimal (the record is then unusable).
func FromRR(t *dns.TLSA) (Record, bool) {
	data, err := hexDecode(t.Certificate)
	if err != nil {
		return Record{}, false
	}
	return Record{Usage: t.Usage, Selector: t.Selector, Matching: t.MatchingType, Data: data}, true
}

// Usable reports whether an SMTP client may use r (RFC 7672 §3.1):
// DANE-EE(3) and DANE-TA(2) only, because PKIX-TA(0) and PKIX-EE(1) would
// need a set of trusted CAs that MTAs do not share (§3.1.3: "SMTP client
// MUST treat [them] as unusable"); a known selector and matching type
// (RFC 7671 §4: unknown parameters make a record unusable); and a digest
// of the right length (a truncated digest never matches, and makes the
// record unusable rather than a cause of failure).
func Usable(r Record) bool {
	if r.Usage != UsageDANETA && r.Usage != UsageDANEEE {
		return false
	}
	if r.Selector != SelectorCert && r.Selector != SelectorSPKI {
		return false
	}
	switch r.Matching {
	case MatchFull:
		return len(r.Data) > 0
	case MatchSHA256:
		return len(r.Data) == 32
	case MatchSHA512:
		return len(r.Data) == 64
	}
	return false
}

// Status is what DANE demands of a connection to one host.
type Status int

const (
	// None: no secure TLSA RRset, DANE does not apply; the rest of the
	// TLS policy decides.
	None Status = iota
	// Authenticate: TLS is mandatory and the server's chain must match
	// one of Result.Records (RFC 7672 §2.2, §3).
	Authenticate
	// EncryptOnly: TLSA records were published, securely, but none is
	// usable. The server announced TLS support, so TLS stays mandatory,
	// but there is nothing to authenticate against (RFC 7672 §2.2: such
	// an RRset is still a commitment to STARTTLS, and falling back to
	// cleartext would hand a downgrade to an active attacker).
	EncryptOnly
)

func (s Status) String() string {
	switch s {
	case Authenticate:
		return "dane"
	case EncryptOnly:
		return "dane-unusable"
	}
	return "none"
}

// Result is what Lookup found for one host.
type Result struct {
	Status  Status
	Records []Record // the usable records (Authenticate)
	// Base is the TLSA base domain the records came from: the host name,
	// or its CNAME-expanded name (RFC 7672 §2.2.3). Without dot.
	Base string
	// Names are the reference identifiers for DANE-TA(2) name checks
	// (RFC 7672 §3.2.2): the TLSA base domain and the MX host name.
	Names []string
}

// Resolver is the part of *resolver.Resolver that Lookup uses.
type Resolver interface {
	Lookup(ctx context.Context, name string, qtype uint16) (resolver.Answer, error)
}

// Port is the SMTP port whose TLSA records apply to MX delivery (RFC
// 7672 §2.2.3: "_25._tcp.").
const Port = 25

// Lookup finds what DANE demands of host, an MX host name (or a route's
// host) to be reached on port. With trustAD false it is always None. An
// error means DNS gave no answer for a host whose addresses are secure:
// the caller must not deliver to it without DANE (RFC 7672 §2.1.1).
func Lookup(ctx context.Context, r Resolver, host string, port int, trustAD bool) (Result, error) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if !trustAD || host == "" {
		return Result{}, nil
	}
	// RFC 7672 §2.2.3: DANE applies only to a host whose address records
	// are secure. The resolver's AD covers the whole CNAME chain it
	// followed, so an MX name reached through an insecure CNAME is
	// insecure here too (§2.2.2: its expanded name may not be used, and
	// an attacker who can forge the CNAME could forge "no TLSA").
	addr, err := r.Lookup(ctx, host, dns.TypeA)
	if err != nil || (len(addr.Records) == 0 && !addr.NXDomain) {
		// No A answer (or none for IPv4): the AAAA lookup decides.
		if a6, err6 := r.Lookup(ctx, host, dns.TypeAAAA); err6 == nil && len(a6.Records) > 0 {
			addr, err = a6, nil
		}
	}
	if err != nil {
		return Result{}, fmt.Errorf("%w: addresses of %s: %w", ErrLookup, host, err)
	}
	if !addr.AD {
		return Result{}, nil
	}
	canonical := strings.TrimSuffix(addr.Canonical, ".")
	// With a secure CNAME chain the expanded name's TLSA records come
	// first, then the original name's (RFC 7672 §2.2.3; RFC 7671 §7).
	bases := []string{host}
	if canonical != "" && canonical != host {
		bases = []string{canonical, host}
	}
	names := []string{host}
	if len(bases) == 2 {
		names = []string{canonical, host}
	}
	for _, base := range bases {
		qname := fmt.Sprintf("_%d._tcp.%s", port, base)
		ans, err := r.Lookup(ctx, qname, dns.TypeTLSA)
		if err != nil {
			// SERVFAIL (bogus or unreachable) or timeout: indeterminate,
			// so the host may not be used yet (RFC 7672 §2.1.1).
			return Result{}, fmt.Errorf("%w: TLSA %s: %w", ErrLookup, qname, err)
		}
		if !ans.AD {
			// An insecure TLSA RRset is ignored (RFC 7672 §2.2.3), and
			// an insecure denial of the expanded name's records would
			// not make the original name's trustworthy either.
			return Result{}, nil
		}
		if len(ans.Records) == 0 {
			continue // secure denial: the next base domain, or None
		}
		res := Result{Status: EncryptOnly, Base: base, Names: names}
		for _, rr := range ans.Records {
			t, ok := rr.(*dns.TLSA)
			if !ok {
				continue
			}
			if rec, ok := FromRR(t); ok && Usable(rec) {
				res.Records = append(res.Records, rec)
			}
		}
		if len(res.Records) > 0 {
			res.Status = Authenticate
		}
		return res, nil
	}
	return Result{}, nil
}

// LookupMX is Lookup for host as an MX host of domain (or domain itself,
// when it has no MX records: RFC 5321 §5.1's implicit MX). DANE applies
// only when the MX RRset is secure too (RFC 7672 §2.2.1): from an
// insecure one an attacker could substitute MX hosts of his own, with
// TLSA records of his own, so DANE would prove nothing (and RFC 8689
// §4.2.1 item 1 asks the same of REQUIRETLS).
func LookupMX(ctx context.Context, r Resolver, domain, host string, port int, trustAD bool) (Result, error) {
	if !trustAD {
		return Result{}, nil
	}
	mx, err := r.Lookup(ctx, domain, dns.TypeMX)
	if err != nil {
		return Result{}, fmt.Errorf("%w: MX of %s: %w", ErrLookup, domain, err)
	}
	if !mx.AD {
		return Result{}, nil
	}
	return Lookup(ctx, r, host, port, trustAD)
}

// ErrLookup is a DNS lookup DANE depends on that got no answer: the
// host's DANE status is indeterminate (RFC 7672 §2.1.1), "dnssec-invalid"
// for TLS-RPT (RFC 8460 §4.3.2).
var ErrLookup = errors.New("dane: lookup failed")

// ErrNoMatch is a server chain that matched none of the usable records.
var ErrNoMatch = errors.New("dane: no TLSA record matches the server's certificate chain")

func hexDecode(s string) ([]byte, error) {
	return hex.DecodeString(strings.Join(strings.Fields(s), ""))
}
