package main

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/fakemx"
)

// TestProofMTASTS (issue 14 item 2) drives the built binary with
// MTA-STS on, against the test DNS server, a loopback HTTPS policy
// server whose certificate the test CA signed (delivery.ca_file), on
// the port delivery.mta_sts_port names (allowed because the resolver is
// on loopback), and two fake MXs with test-CA certificates:
//   - sts.test publishes an enforce policy listing mx.sts.test: the
//     binary fetches it and delivers over TLS verified for that name;
//   - rogue.test publishes an enforce policy listing mx.sts.test, but
//     its MX is mx.rogue.test (with a certificate valid for its own
//     name): refused as tls-policy, never delivered, though delivery.tls
//     is "may" and would otherwise have used that MX.
func TestProofMTASTS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	a, b, port := startTLSMXPair(t, ca.issue("mx.sts.test"), ca.issue("mx.rogue.test"), fakemx.Options{})

	var fetches atomic.Int32
	const policy = "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmax_age: 86400\r\n"
	srv := startPolicyServer(t, ca.issue("mta-sts.sts.test", "mta-sts.rogue.test"),
		map[string]string{"mta-sts.sts.test": policy, "mta-sts.rogue.test": policy}, &fetches)
	_, httpsPort, _ := net.SplitHostPort(srv.Listener.Addr().String())

	ns := serveDNS(t, testZone(
		"sts.test. 300 IN MX 10 mx.sts.test.",
		"mx.sts.test. 300 IN A 127.0.0.1",
		`_mta-sts.sts.test. 300 IN TXT "v=STSv1; id=1"`,
		"mta-sts.sts.test. 300 IN A 127.0.0.1",
		"rogue.test. 300 IN MX 10 mx.rogue.test.",
		"mx.rogue.test. 300 IN A 127.0.0.2",
		`_mta-sts.rogue.test. 300 IN TXT "v=STSv1; id=1"`,
		"mta-sts.rogue.test. 300 IN A 127.0.0.1",
	))
	_, cfg, smtpAddr := startRelayIn(t, dir, tlsDelivery(port, ns.Addr(), ca.file, `tls = "may"`, "mta_sts = true", "mta_sts_port = "+httpsPort))
	submitPlain(t, smtpAddr, "u@sts.test")
	submitPlain(t, smtpAddr, "u@rogue.test")
	eventually(t, 30*time.Second, "sts.test delivered under its policy, rogue.test refused by its own", func() bool {
		log := relayLog(cfg)
		return a.Stats().Recipients["u@sts.test"].Deliveries == 1 &&
			strings.Contains(log, "TLS policy failure: destination paused") && strings.Contains(log, "dest=rogue.test")
	})
	if n := b.Stats().Recipients["u@rogue.test"].Deliveries; n != 0 {
		t.Fatalf("u@rogue.test delivered %d times to an MX outside its enforced MTA-STS policy", n)
	}
	if n := b.Stats().Connections; n != 0 {
		t.Errorf("mx.rogue.test got %d connections: a host outside an enforced policy is not even dialled (RFC 8461 §4.1)", n)
	}
	if a.Stats().TLSSessions == 0 {
		t.Error("sts.test was not delivered over TLS")
	}
	if fetches.Load() == 0 {
		t.Error("no policy was fetched from the policy server")
	}
	log := relayLog(cfg)
	for _, want := range []string{
		"mtasts: policy fetched", "domain=sts.test", "mode=enforce",
		"MX host mx.rogue.test does not match the MTA-STS policy of rogue.test",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}
