package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/internal/dnstest"
	"sluice/internal/fakemx"
	"sluice/internal/testca"
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
	now := time.Now()
	ca, err := testca.New(now)
	if err != nil {
		t.Fatal(err)
	}
	good, err := ca.Issue(now.Add(-time.Hour), now.Add(time.Hour), "mx.good.test")
	if err != nil {
		t.Fatal(err)
	}
	other, err := ca.Issue(now.Add(-time.Hour), now.Add(time.Hour), "other.test")
	if err != nil {
		t.Fatal(err)
	}
	a := startFakeMX(t, fakemx.Options{STARTTLS: true, TLSConfig: &tls.Config{Certificates: []tls.Certificate{good}}})
	_, port, _ := net.SplitHostPort(a.Addr())
	b := startFakeMX(t, fakemx.Options{Addr: "127.0.0.2:" + port, STARTTLS: true, TLSConfig: &tls.Config{Certificates: []tls.Certificate{other}}})
	zone := dnstest.NewZone(
		"test. 300 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 1",
		"good.test. 300 IN MX 10 mx.good.test.",
		"mx.good.test. 300 IN A 127.0.0.1",
		"bad.test. 300 IN MX 10 mx.bad.test.",
		"loose.test. 300 IN MX 10 mx.bad.test.",
		"mx.bad.test. 300 IN A 127.0.0.2",
	)
	ns, err := dnstest.Start(dnstest.Options{Answerer: zone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)

	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	smtpAddr := freeAddr(t)
	cfg := writeConfig(t, dir, smtpAddr, fmt.Sprintf(`
[delivery]
port = %s
tls = "opportunistic"
resolver = %q
resolver_min_ttl = "1s"
ca_file = %q

[[delivery.tls_policy]]
domain = "good.test"
mode = "verify"

[[delivery.tls_policy]]
domain = "Bad.Test"
mode = "verify"
`, port, ns.Addr(), caFile))
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(relayLog(cfg))
		}
	})
	startRelay(t, cfg, smtpAddr)
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

// submitPlain submits one short message in the clear.
func submitPlain(t *testing.T, addr, to string) {
	t.Helper()
	rc, _, _ := dialSMTP(t, addr, "127.0.0.1")
	rc.must("EHLO client.test", 250)
	rc.must("MAIL FROM:<app@src.test>", 250)
	rc.must("RCPT TO:<"+to+">", 250)
	rc.must("DATA", 354)
	rc.must("From: app@src.test\r\nTo: "+to+"\r\nSubject: tls policy\r\n\r\nbody\r\n.", 250)
	rc.must("QUIT", 221)
}
