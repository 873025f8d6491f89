package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"sluice/internal/dnstest"
	"sluice/internal/resolvertest"
)

// TestDoctorDANE (issue 14 item 3): with delivery.resolver_dnssec,
// `sluice doctor` shows the DANE posture of the domain's MX hosts, lists
// unusable TLSA records among the things to fix, and exits 1 when a TLSA
// lookup fails (the report is incomplete); without it, DANE is "not
// checked".
func TestDoctorDANE(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	on := write("on.toml", "[delivery]\noutbound_ips = [\"192.0.2.7\"]\nresolver = \"127.0.0.1:53\"\nresolver_dnssec = true\n")
	off := write("off.toml", "[delivery]\noutbound_ips = [\"192.0.2.7\"]\n")
	z := dnstest.NewZone(
		"good.test. 300 IN MX 10 mx.good.test.",
		"mx.good.test. 300 IN A 192.0.2.25",
		"_25._tcp.mx.good.test. 300 IN TLSA 1 1 1 "+strings.Repeat("ab", 32),
		"bad.test. 300 IN MX 10 mx.bad.test.",
		"mx.bad.test. 300 IN A 192.0.2.26",
	)
	z.Fail("_25._tcp.mx.bad.test", dns.RcodeServerFailure)
	r := resolvertest.New(t, z, true)
	zone := zoneDNS{
		txt: map[string][]string{"good.test": {"v=spf1 ip4:192.0.2.7 -all"}, "bad.test": {"v=spf1 ip4:192.0.2.7 -all"}},
		mx:  map[string][]*net.MX{"good.test": {{Host: "mx.good.test.", Pref: 10}}, "bad.test": {{Host: "mx.bad.test.", Pref: 10}}},
	}
	for _, tc := range []struct {
		cfg, domain string
		code        int
		want        []string
	}{
		{on, "good.test", 0, []string{"DANE\n  MX records: DNSSEC-signed", "mx.good.test", "none usable", "publish DANE-EE(3) or DANE-TA(2) records"}},
		{on, "bad.test", 1, []string{"lookup failed", "senders that use DANE cannot deliver"}},
		{off, "good.test", 0, []string{"DANE\n  not checked: delivery.resolver_dnssec is off"}},
	} {
		out := doctorOut(t, doctorCmd{resolver: zone, dane: r}, tc.cfg, tc.domain, tc.code)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.domain, w, out)
			}
		}
	}
}
