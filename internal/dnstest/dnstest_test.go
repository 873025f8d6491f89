package dnstest

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestZoneAnswer(t *testing.T) {
	t.Parallel()
	z := NewZone(
		"a.test. 300 IN MX 10 mx.a.test.",
		"mx.a.test. 300 IN A 192.0.2.1",
		"alias.test. 60 IN CNAME mx.a.test.",
		"loop1.test. 60 IN CNAME loop2.test.",
		"loop2.test. 60 IN CNAME loop1.test.",
	)
	z.Fail("broken.test", dns.RcodeServerFailure)
	tests := []struct {
		name         string
		qtype        uint16
		rcode        int
		answers, soa int
	}{
		{"a.test.", dns.TypeMX, dns.RcodeSuccess, 1, 0},
		{"A.TEST", dns.TypeMX, dns.RcodeSuccess, 1, 0},
		{"a.test.", dns.TypeA, dns.RcodeSuccess, 0, 1},      // NODATA
		{"alias.test.", dns.TypeA, dns.RcodeSuccess, 2, 0},  // CNAME + A
		{"alias.test.", dns.TypeMX, dns.RcodeSuccess, 1, 1}, // CNAME, then NODATA
		{"gone.test.", dns.TypeA, dns.RcodeNameError, 0, 1},
		{"broken.test.", dns.TypeA, dns.RcodeServerFailure, 0, 0},
		{"loop1.test.", dns.TypeA, dns.RcodeSuccess, 16, 1}, // the loop ends
	}
	for _, tt := range tests {
		r := z.Answer(tt.name, tt.qtype)
		if r.Rcode != tt.rcode || len(r.Answer) != tt.answers || len(r.Ns) != tt.soa {
			t.Errorf("%s %s: rcode %d, %d answers, %d authority; want %d, %d, %d", tt.name, dns.TypeToString[tt.qtype],
				r.Rcode, len(r.Answer), len(r.Ns), tt.rcode, tt.answers, tt.soa)
		}
	}
	z.Remove("a.test")
	if r := z.Answer("a.test.", dns.TypeMX); r.Rcode != dns.RcodeNameError {
		t.Errorf("after Remove: rcode %d", r.Rcode)
	}
}

func TestSuffixIPv6(t *testing.T) {
	t.Parallel()
	s := Suffix{Suffix: "many.test", Addr: netip.MustParseAddr("::1"), TTL: 5}
	if r := s.Answer("mx.d1.many.test.", dns.TypeAAAA); len(r.Answer) != 1 {
		t.Errorf("AAAA: %v", r)
	}
	if r := s.Answer("mx.d1.many.test.", dns.TypeA); len(r.Answer) != 0 || len(r.Ns) != 1 {
		t.Errorf("A of an IPv6 host: %v", r)
	}
	if r := s.Answer("many.test.", dns.TypeMX); len(r.Answer) != 0 {
		t.Errorf("the suffix itself has an MX: %v", r)
	}
}

// TestServerCounts: queries are counted per name and transport, and the
// delay makes concurrent queries overlap.
func TestServerCounts(t *testing.T) {
	t.Parallel()
	s, err := Start(Options{Answerer: NewZone("a.test. 300 IN A 192.0.2.1"), Delay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	for _, network := range []string{"udp", "tcp", "udp"} {
		wg.Go(func() {
			c := &dns.Client{Net: network, Timeout: 5 * time.Second}
			q := new(dns.Msg)
			q.SetQuestion("a.test.", dns.TypeA)
			if m, _, err := c.Exchange(q, s.Addr()); err != nil || len(m.Answer) != 1 {
				t.Errorf("%s: %v, %v", network, m, err)
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if st.Queries != 3 || st.UDP != 2 || st.TCP != 1 || s.Count("A.test", dns.TypeA) != 3 {
		t.Fatalf("stats %+v, count %d", st, s.Count("a.test", dns.TypeA))
	}
	if st.MaxInFlight < 1 || st.MaxInFlight > 3 {
		t.Fatalf("max in flight %d", st.MaxInFlight)
	}
}
