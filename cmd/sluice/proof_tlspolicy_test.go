package main

import (
	"strings"
	"testing"
	"time"

	"sluice/internal/fakemx"
)

// TestProofTLSPolicy (issue 14 item 1) drives the built binary against
// the test DNS server and two fake MXs whose certificates a test CA
// signed, trusted through delivery.ca_file:
//   - [[delivery.tls_policy]] verify for good.test, whose MX presents a
//     certificate for its name: delivered over verified TLS;
//   - verify for bad.test, whose MX presents one for another name: not
//     delivered, never in the clear, logged as a tls-policy failure and
//     the destination paused;
//   - loose.test, to that same MX with no policy entry, goes under
//     delivery.tls = "may" (encrypted, unverified).
func TestProofTLSPolicy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	a, b, port := startTLSMXPair(t, ca.issue("mx.good.test"), ca.issue("other.test"), fakemx.Options{})
	ns := serveDNS(t, testZone(
		"good.test. 300 IN MX 10 mx.good.test.",
		"mx.good.test. 300 IN A 127.0.0.1",
		"bad.test. 300 IN MX 10 mx.bad.test.",
		"loose.test. 300 IN MX 10 mx.bad.test.",
		"mx.bad.test. 300 IN A 127.0.0.2",
	))
	_, cfg, smtpAddr := startRelayIn(t, dir, tlsDelivery(port, ns.Addr(), ca.file, `tls = "opportunistic"`, verifyPolicies("good.test", "Bad.Test")))
	for _, to := range []string{"u@good.test", "u@bad.test", "u@loose.test"} {
		submitPlain(t, smtpAddr, to)
	}
	delivered := func(s *fakemx.Server, addr string) int { return s.Stats().Recipients[addr].Deliveries }
	eventually(t, 30*time.Second, "good.test over verified TLS, loose.test under may, bad.test refused by its policy", func() bool {
		log := relayLog(cfg)
		return delivered(a, "u@good.test") == 1 && delivered(b, "u@loose.test") == 1 &&
			strings.Contains(log, "TLS policy failure: destination paused") && strings.Contains(log, "mx.bad.test")
	})
	if n := delivered(b, "u@bad.test"); n != 0 {
		t.Fatalf("u@bad.test delivered %d times to an MX whose certificate does not match the verify policy", n)
	}
	log := relayLog(cfg)
	for _, want := range []string{"relay: TLS policy: certificate does not verify", "tls_source=tls_policy", "x509: certificate is valid for other.test, not mx.bad.test"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}
