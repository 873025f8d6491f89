package dane

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"sluice/internal/dnstest"
)

// TestDoctor: the DANE section of `sluice doctor` over a signed zone:
// good, unusable and failing TLSA RRsets, an unsigned MX RRset, and
// nothing checked when the AD bit is not trusted.
func TestDoctor(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	good, _ := p.leaf(t, false, now.Add(-time.Hour), now.Add(time.Hour), "mx1.d.test")
	z := dnstest.NewZone(
		"d.test. 300 IN MX 10 mx1.d.test.",
		"d.test. 300 IN MX 20 mx2.d.test.",
		"d.test. 300 IN MX 30 mx3.d.test.",
		"mx1.d.test. 300 IN A 127.0.0.1",
		tlsaRR("_25._tcp.mx1.d.test.", rec(3, 1, 1, good)),
		"mx2.d.test. 300 IN A 127.0.0.1",
		tlsaRR("_25._tcp.mx2.d.test.", rec(0, 0, 1, p.ca)),
		"mx3.d.test. 300 IN A 127.0.0.1",
		"unsigned.test. 300 IN MX 10 mx1.d.test.",
		"plain.test. 300 IN A 127.0.0.1",
	)
	z.Fail("_25._tcp.mx3.d.test", dns.RcodeServerFailure)
	r := newResolver(t, insecure{dnstest.NewInProcess(z, true), map[string]bool{"unsigned.test": true}})

	rep := Doctor(context.Background(), r, "d.test", true)
	if !rep.MXSecure || len(rep.Hosts) != 3 || rep.Hosts[0].Status != "dane" || rep.Hosts[1].Status != "dane-unusable" || rep.Hosts[2].Error == "" {
		t.Fatalf("d.test: %+v", rep)
	}
	if len(rep.Problems) != 2 || !strings.Contains(rep.Problems[0], "mx2.d.test") || !strings.Contains(rep.Problems[1], "mx3.d.test") || len(rep.Failures) != 1 {
		t.Errorf("problems %q, failures %q", rep.Problems, rep.Failures)
	}
	if txt := rep.Text(); !strings.Contains(txt, "TLSA at _25._tcp.mx1.d.test: 3 1 1 ") || !strings.Contains(txt, "none usable") {
		t.Errorf("text:\n%s", txt)
	}

	rep = Doctor(context.Background(), r, "unsigned.test", true)
	if rep.MXSecure || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "not DNSSEC-signed") {
		t.Errorf("unsigned.test: %+v", rep)
	}
	rep = Doctor(context.Background(), r, "plain.test", true)
	if len(rep.Hosts) != 1 || rep.Hosts[0].Host != "plain.test" || rep.Hosts[0].Status != "none" || len(rep.Problems) != 0 {
		t.Errorf("plain.test (implicit MX, no DANE): %+v", rep)
	}
	rep = Doctor(context.Background(), r, "d.test", false)
	if rep.Checked || len(rep.Hosts) != 0 || !strings.Contains(rep.Text(), "not checked") {
		t.Errorf("untrusted AD: %+v", rep)
	}
}
