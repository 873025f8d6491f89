package resolver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"
)

// FuzzParseReply: whatever a server sends (any bytes that unpack as a
// DNS message), reading it never panics, keeps only records of the type
// asked, and never follows more CNAMEs than allowed.
func FuzzParseReply(f *testing.F) {
	for _, m := range seedReplies() {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(dns.TypeMX))
	}
	f.Fuzz(func(t *testing.T, b []byte, qtype uint16) {
		m := new(dns.Msg)
		if m.Unpack(b) != nil {
			return
		}
		k := makeKey("a.test", qtype)
		ans, _, _ := parse(k, m)
		for _, rr := range ans.Records {
			if rr.Header().Rrtype != qtype {
				t.Fatalf("record %v kept for a %s question", rr, dns.TypeToString[qtype])
			}
		}
		if qtype == dns.TypeMX {
			mxAnswer(ans)
		}
	})
}

func seedReplies() []*dns.Msg {
	mk := func(rcode int, answer, ns []string) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion("a.test.", dns.TypeMX)
		m.Response, m.Rcode = true, rcode
		for _, s := range answer {
			rr, _ := dns.NewRR(s)
			m.Answer = append(m.Answer, rr)
		}
		for _, s := range ns {
			rr, _ := dns.NewRR(s)
			m.Ns = append(m.Ns, rr)
		}
		return m
	}
	soa := "test. 60 IN SOA ns.test. h.test. 1 2 3 4 5"
	return []*dns.Msg{
		mk(dns.RcodeSuccess, []string{"a.test. 60 IN MX 10 mx.a.test."}, nil),
		mk(dns.RcodeSuccess, []string{"a.test. 60 IN MX 0 ."}, nil),
		mk(dns.RcodeSuccess, []string{"a.test. 60 IN CNAME b.test.", "b.test. 60 IN CNAME a.test."}, nil),
		mk(dns.RcodeSuccess, []string{"a.test. 60 IN CNAME b.test."}, []string{soa}),
		mk(dns.RcodeNameError, nil, []string{soa}),
	}
}

// FuzzResolvConf: any resolv.conf text is read without a panic, and what
// is accepted makes a valid Upstream.
func FuzzResolvConf(f *testing.F) {
	f.Add("nameserver 192.0.2.53\noptions timeout:1 attempts:3 trust-ad\n")
	f.Add("search a b\nnameserver ::1\nnameserver fe80::1%eth0\n")
	f.Add("options timeout:0 attempts:-1\n")
	f.Fuzz(func(t *testing.T, text string) {
		p := filepath.Join(t.TempDir(), "resolv.conf")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		o, err := UpstreamFromResolvConf(p)
		if err != nil {
			return
		}
		if _, err := NewUpstream(o); err != nil {
			t.Fatalf("resolv.conf %q read as %+v, which NewUpstream refuses: %v", text, o, err)
		}
	})
}
