package dane

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzTLSA feeds arbitrary TLSA records (zone-file text) through parsing,
// the usability rules and matching against a fixed chain: nothing may
// panic, and a record that matches must be usable and of a DANE usage.
func FuzzTLSA(f *testing.F) {
	p := newPKI(f)
	leaf, _ := p.leaf(f, false, now.Add(-time.Hour), now.Add(time.Hour), "mx.example.test")
	chain := []*x509.Certificate{leaf, p.ca}
	f.Add("3 1 1 " + strings.Repeat("ab", 32))
	f.Add("2 0 2 " + strings.Repeat("00", 64))
	f.Add("3 1 0 3059301306072a8648ce3d020106082a8648ce3d03010703420004")
	f.Add("0 0 1 " + strings.Repeat("ff", 32))
	f.Add("3 1 1 abc")
	f.Add(tlsaRR("x.", rec(3, 1, 1, leaf))[len("x. 300 IN TLSA "):])
	f.Add(tlsaRR("x.", rec(2, 0, 1, p.ca))[len("x. 300 IN TLSA "):])
	f.Fuzz(func(t *testing.T, rdata string) {
		rr, err := dns.NewRR("_25._tcp.mx.example.test. 300 IN TLSA " + rdata)
		if err != nil || rr == nil {
			return
		}
		tl, ok := rr.(*dns.TLSA)
		if !ok {
			return
		}
		r, ok := FromRR(tl)
		if !ok {
			return
		}
		for _, c := range chain {
			if Match(r, c) && (!Usable(r) || r.Usage < UsageDANETA) {
				t.Fatalf("unusable record %v matched", r)
			}
		}
		res := Result{Status: Authenticate, Records: []Record{r}, Names: []string{"mx.example.test"}}
		if err := Verify(res, chain, now); err == nil && !Usable(r) {
			t.Fatalf("unusable record %v verified", r)
		}
	})
}
