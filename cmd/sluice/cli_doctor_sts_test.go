package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"sluice/internal/dnstest"
	"sluice/internal/resolvertest"
)

// TestDoctorMTASTSAndTLSRPT (issue 14): `sluice doctor DOMAIN` checks
// the domain's own MTA-STS (the _mta-sts record, the policy fetched
// over HTTPS with full validation and parsed, the MX hosts against its
// patterns) and TLS-RPT record (a valid rua), beside the DANE section.
// DNS is the test DNS server's zone, the policy server a loopback HTTPS
// server whose certificate the test CA signed (trusted through
// delivery.ca_file), reached through the injected dialer.
func TestDoctorMTASTSAndTLSRPT(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	srv := startPolicyServer(t, ca.issue("mta-sts.good.test", "mta-sts.outside.test", "mta-sts.gone.test", "mta-sts.garbled.test"), map[string]string{
		"mta-sts.good.test":    "version: STSv1\nmode: enforce\nmx: mx.good.test\nmax_age: 604800\n",
		"mta-sts.outside.test": "version: STSv1\nmode: testing\nmx: mx.good.test\nmax_age: 86400\n",
		"mta-sts.garbled.test": "version: STSv1\nmode: Enforce\nmx: mx.good.test\nmax_age: 86400\n",
	}, nil)
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv.Listener.Addr().String())
	}

	z := dnstest.NewZone(
		"good.test. 300 IN MX 10 mx.good.test.",
		"mx.good.test. 300 IN A 192.0.2.25",
		`_mta-sts.good.test. 300 IN TXT "v=STSv1; id=20261130"`,
		`_smtp._tls.good.test. 300 IN TXT "v=TLSRPTv1; rua=mailto:tls-reports@good.test"`,
		"outside.test. 300 IN MX 10 mx.outside.test.",
		`_mta-sts.outside.test. 300 IN TXT "v=STSv1; id=1"`,
		`_smtp._tls.outside.test. 300 IN TXT "v=TLSRPTv1; rua=gopher://x.test"`,
		"gone.test. 300 IN MX 10 mx.good.test.",
		`_mta-sts.gone.test. 300 IN TXT "v=STSv1; id=1"`,
		"garbled.test. 300 IN MX 10 mx.good.test.",
		`_mta-sts.garbled.test. 300 IN TXT "v=STSv1; id=1"`,
		"none.test. 300 IN MX 10 mx.good.test.",
		"dnsfail.test. 300 IN MX 10 mx.good.test.",
	)
	z.Fail("_smtp._tls.dnsfail.test", dns.RcodeServerFailure)
	r := resolvertest.New(t, z, false)

	cfg := filepath.Join(dir, "sluice.toml")
	writeConfigRaw(t, cfg, "[delivery]\noutbound_ips = [\"192.0.2.7\"]\nca_file = \""+ca.file+"\"\n")
	spf := map[string][]string{}
	mxs := map[string][]*net.MX{}
	for _, d := range []string{"good.test", "outside.test", "gone.test", "garbled.test", "none.test", "dnsfail.test"} {
		spf[d] = []string{"v=spf1 ip4:192.0.2.7 -all"}
		mxs[d] = []*net.MX{{Host: "mx.good.test.", Pref: 10}}
	}
	zone := zoneDNS{txt: spf, mx: mxs}
	for _, tc := range []struct {
		domain string
		code   int
		want   []string
		absent []string
	}{
		{"good.test", 0, []string{"MTA-STS\n record v=STSv1; id=20261130", "policy mode enforce, max_age 604800, mx mx.good.test", "TLS-RPT\n rua mailto:tls-reports@good.test"},
			[]string{"MTA-STS policy", "_smtp._tls.good.test"}},
		{"outside.test", 0, []string{"mode testing", "MX hosts mx.outside.test match no mx pattern of the MTA-STS policy of outside.test",
			"the _smtp._tls.outside.test record is not valid", "rua NOT valid", "policy is in testing mode"}, nil},
		{"gone.test", 0, []string{"policy NOT fetched", "the MTA-STS policy at https://mta-sts.gone.test/.well-known/mta-sts.txt cannot be fetched", "404"}, nil},
		{"garbled.test", 0, []string{"https://mta-sts.garbled.test/.well-known/mta-sts.txt does not parse"}, nil},
		{"none.test", 0, []string{"record none", "no MTA-STS record", "rua none", "no TLS-RPT record"}, []string{"MTA-STS policy", "_smtp._tls.none.test record"}},
		{"dnsfail.test", 1, []string{"TLS-RPT\n not checked: the _smtp._tls lookup failed"}, nil},
	} {
		out := doctorOut(t, doctorCmd{resolver: zone, dane: r, stsDial: dial}, cfg, tc.domain, tc.code)
		// Columns are tabwriter's: compare with runs of blanks as one.
		flat := strings.Join(strings.FieldsFunc(out, func(r rune) bool { return r == ' ' || r == '\t' }), " ")
		for _, w := range tc.want {
			if !strings.Contains(flat, w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.domain, w, out)
			}
		}
		for _, w := range tc.absent {
			if strings.Contains(flat, w) {
				t.Errorf("%s: output has %q:\n%s", tc.domain, w, out)
			}
		}
	}
}
