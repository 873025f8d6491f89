package resolver

import (
	"strings"
	"time"

	"github.com/miekg/dns"
)

// parse reads a NOERROR or NXDOMAIN reply to k: the records of k's type
// at the end of the CNAME chain that starts at k's name (RFC 1034 §4.3.2:
// a recursive resolver returns the chain and the records it leads to),
// and how long the answer may be cached, before clamping:
//   - records: the smallest TTL among them and the CNAMEs followed;
//   - NXDOMAIN or NODATA: the negative TTL of the SOA in the authority
//     section, the smaller of its own TTL and its MINIMUM field (RFC 2308
//     §5), and of the CNAMEs followed; without a SOA, 0 (the floor).
//
// chase is set when the chain ends at a name the reply says nothing more
// about (no records, no SOA, NOERROR): the resolver did not follow it, so
// the caller asks for that name itself.
func parse(k key, m *dns.Msg) (ans Answer, ttl time.Duration, chase string) {
	ans = Answer{Name: k.name, Type: k.qtype, Canonical: k.name, AD: m.AuthenticatedData}
	least := uint32(1<<32 - 1)
	cur := k.name
	for hop := 0; ; hop++ {
		var cname *dns.CNAME
		for _, rr := range m.Answer {
			h := rr.Header()
			if h.Class != dns.ClassINET || !strings.EqualFold(h.Name, cur) {
				continue
			}
			if h.Rrtype == k.qtype {
				ans.Records = append(ans.Records, rr)
				least = min(least, h.Ttl)
			} else if c, ok := rr.(*dns.CNAME); ok && cname == nil {
				cname = c
			}
		}
		if len(ans.Records) > 0 || cname == nil || hop == maxCNAMEs {
			break
		}
		least = min(least, cname.Hdr.Ttl)
		cur = strings.ToLower(dns.Fqdn(cname.Target))
	}
	ans.Canonical = cur
	if len(ans.Records) > 0 {
		return ans, seconds(least), ""
	}
	ans.NXDomain = m.Rcode == dns.RcodeNameError
	soa := soaOf(m)
	if soa == nil {
		if m.Rcode == dns.RcodeSuccess && cur != k.name {
			return ans, 0, cur
		}
		// RFC 2308 §5: a negative answer without a SOA should not be
		// cached; MinTTL (the floor) is as little as we cache anything.
		return ans, 0, ""
	}
	return ans, seconds(min(least, soa.Hdr.Ttl, soa.Minttl)), ""
}

// soaOf returns the SOA of the authority section, if any.
func soaOf(m *dns.Msg) *dns.SOA {
	for _, rr := range m.Ns {
		if s, ok := rr.(*dns.SOA); ok {
			return s
		}
	}
	return nil
}

// cnames returns the CNAME records of m's answer section.
func cnames(m *dns.Msg) []dns.RR {
	var out []dns.RR
	for _, rr := range m.Answer {
		if _, ok := rr.(*dns.CNAME); ok {
			out = append(out, rr)
		}
	}
	return out
}

func seconds(s uint32) time.Duration { return time.Duration(s) * time.Second }
