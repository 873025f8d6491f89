package dnstest

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// DefaultSOA comes with negative answers when the zone has no SOA of its
// own: negative TTL min(3600, 60) = 60 s (RFC 2308 §5).
const DefaultSOA = "test. 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60"

// Zone is a table of records, changeable while a server answers from it.
type Zone struct {
	mu      sync.Mutex
	records map[string][]dns.RR // by owner, lower case, fully qualified
	rcodes  map[string]int
	soa     dns.RR
}

// NewZone returns a zone holding records (zone-file syntax, one record
// each). A SOA among them becomes the SOA of negative answers.
func NewZone(records ...string) *Zone {
	z := &Zone{records: map[string][]dns.RR{}, rcodes: map[string]int{}, soa: RR(DefaultSOA)}
	z.Add(records...)
	return z
}

// Add adds records.
func (z *Zone) Add(records ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, s := range records {
		rr := RR(s)
		if rr.Header().Rrtype == dns.TypeSOA {
			z.soa = rr
			continue
		}
		owner := strings.ToLower(rr.Header().Name)
		z.records[owner] = append(z.records[owner], rr)
	}
}

// Remove drops every record of name.
func (z *Zone) Remove(name string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	delete(z.records, fqdn(name))
}

// Fail makes every question about name answer rcode (dns.RcodeServerFailure,
// dns.RcodeRefused, ...); dns.RcodeSuccess undoes it.
func (z *Zone) Fail(name string, rcode int) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if rcode == dns.RcodeSuccess {
		delete(z.rcodes, fqdn(name))
	} else {
		z.rcodes[fqdn(name)] = rcode
	}
}

// Answer follows CNAMEs within the zone, as a recursive resolver would.
func (z *Zone) Answer(name string, qtype uint16) Result {
	z.mu.Lock()
	defer z.mu.Unlock()
	var res Result
	cur := fqdn(name)
	for range 16 {
		if rc, ok := z.rcodes[cur]; ok {
			return Result{Rcode: rc}
		}
		rrs, ok := z.records[cur]
		if !ok {
			res.Rcode = dns.RcodeNameError
			res.Ns = []dns.RR{dns.Copy(z.soa)}
			return res
		}
		var cname *dns.CNAME
		n := len(res.Answer)
		for _, rr := range rrs {
			if rr.Header().Rrtype == qtype {
				res.Answer = append(res.Answer, dns.Copy(rr))
			} else if c, ok := rr.(*dns.CNAME); ok {
				cname = c
			}
		}
		if len(res.Answer) > n || cname == nil {
			break
		}
		res.Answer = append(res.Answer, dns.Copy(cname))
		cur = strings.ToLower(dns.Fqdn(cname.Target))
	}
	if len(res.Answer) == 0 || res.Answer[len(res.Answer)-1].Header().Rrtype != qtype {
		res.Ns = []dns.RR{dns.Copy(z.soa)} // NODATA
	}
	return res
}

func fqdn(name string) string { return dns.Fqdn(strings.ToLower(name)) }

// Suffix answers for any number of mail domains under a suffix, for the
// bench: a domain D under it (D123.test) has "MX 10 mx.D", and mx.D has
// "A Addr"; everything else under the suffix exists with no records of
// the type asked (NODATA), and names outside it do not exist (NXDOMAIN).
type Suffix struct {
	Suffix string     // "test"
	Addr   netip.Addr // of every MX host; an IPv6 one answers AAAA instead of A
	TTL    uint32     // of every record and of the SOA's negative answers
}

// Answer implements Answerer.
func (s Suffix) Answer(name string, qtype uint16) Result {
	name = fqdn(name)
	suffix := fqdn(s.Suffix)
	soa := RR(fmt.Sprintf("%s %d IN SOA ns.%s hostmaster.%s 1 3600 600 86400 %d", suffix, s.TTL, suffix, suffix, s.TTL))
	if name != suffix && !strings.HasSuffix(name, "."+suffix) {
		return Result{Rcode: dns.RcodeNameError, Ns: []dns.RR{soa}}
	}
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: s.TTL}
	}
	isMX := strings.HasPrefix(name, "mx.")
	switch {
	case !isMX && name != suffix && qtype == dns.TypeMX:
		return Result{Answer: []dns.RR{&dns.MX{Hdr: hdr(dns.TypeMX), Preference: 10, Mx: "mx." + name}}}
	case isMX && qtype == dns.TypeA && s.Addr.Is4():
		return Result{Answer: []dns.RR{&dns.A{Hdr: hdr(dns.TypeA), A: s.Addr.AsSlice()}}}
	case isMX && qtype == dns.TypeAAAA && s.Addr.Is6():
		return Result{Answer: []dns.RR{&dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: s.Addr.AsSlice()}}}
	}
	return Result{Ns: []dns.RR{soa}}
}
