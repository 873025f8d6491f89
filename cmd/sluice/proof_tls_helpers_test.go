package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/dnstest"
	"sluice/internal/fakemx"
	"sluice/internal/testca"
)

// Helpers of the TLS, DNS and doctor tests (issue 14): a test CA that
// the relay trusts through delivery.ca_file, a loopback DNS server it
// resolves through (delivery.resolver), fake MXs and an MTA-STS policy
// server presenting test-CA certificates, the config and start-up that
// tie them together, and a `sluice doctor` run (its resolver is
// internal/resolvertest's), so that each test states only its names,
// records, policies and assertions.

// testCA is a test certificate authority (internal/testca) whose
// certificate is written to file, for delivery.ca_file.
type testCA struct {
	t    *testing.T
	ca   *testca.CA
	file string
}

// newTestCA makes a CA and writes its PEM to dir/ca.pem.
func newTestCA(t *testing.T, dir string) *testCA {
	t.Helper()
	ca, err := testca.New(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(file, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return &testCA{t: t, ca: ca, file: file}
}

// issue returns a certificate for names, valid from an hour ago to an
// hour from now.
func (c *testCA) issue(names ...string) tls.Certificate {
	c.t.Helper()
	now := time.Now()
	cert, err := c.ca.Issue(now.Add(-time.Hour), now.Add(time.Hour), names...)
	if err != nil {
		c.t.Fatal(err)
	}
	return cert
}

// testZone is a zone under "test." holding records, its SOA first (a
// name it lacks is then NXDOMAIN with a negative TTL, RFC 2308 §3).
func testZone(records ...string) *dnstest.Zone {
	return dnstest.NewZone(append([]string{"test. 300 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 1"}, records...)...)
}

// serveDNS serves zone from a loopback DNS server until the test ends;
// its Addr is for delivery.resolver.
func serveDNS(t *testing.T, zone *dnstest.Zone) *dnstest.Server {
	t.Helper()
	ns, err := dnstest.Start(dnstest.Options{Answerer: zone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	return ns
}

// startTLSMXPair starts two fake MXs offering STARTTLS on one port (the
// relay dials every MX on delivery.port): a on 127.0.0.1 presenting
// certA, with the options o, and b on 127.0.0.2 presenting certB.
func startTLSMXPair(t *testing.T, certA, certB tls.Certificate, o fakemx.Options) (a, b *fakemx.Server, port string) {
	t.Helper()
	o.STARTTLS, o.TLSConfig = true, &tls.Config{Certificates: []tls.Certificate{certA}}
	a = startFakeMX(t, o)
	_, port, _ = net.SplitHostPort(a.Addr())
	b = startFakeMX(t, fakemx.Options{Addr: "127.0.0.2:" + port, STARTTLS: true, TLSConfig: &tls.Config{Certificates: []tls.Certificate{certB}}})
	return a, b, port
}

// tlsDelivery is the [delivery] section of a relay that delivers to port
// of the MX hosts that the DNS server at dnsAddr names, trusting the
// test CA in caFile; the lines of extra follow (more delivery keys, then
// tables such as verifyPolicies).
func tlsDelivery(port, dnsAddr, caFile string, extra ...string) string {
	return fmt.Sprintf(`
[delivery]
port = %s
resolver = %q
resolver_min_ttl = "1s"
ca_file = %q
%s
`, port, dnsAddr, caFile, strings.Join(extra, "\n"))
}

// verifyPolicies is one [[delivery.tls_policy]] entry of mode "verify"
// per domain.
func verifyPolicies(domains ...string) string {
	var b strings.Builder
	for _, d := range domains {
		fmt.Fprintf(&b, "\n[[delivery.tls_policy]]\ndomain = %q\nmode = \"verify\"\n", d)
	}
	return b.String()
}

// startRelayIn writes the relay's config (writeConfig with extra) in
// dir, starts it on a free loopback port, and logs its log when the test
// fails. It returns the process, the config's path and the SMTP address.
func startRelayIn(t *testing.T, dir, extra string) (p *relayProc, cfg, smtpAddr string) {
	t.Helper()
	smtpAddr = freeAddr(t)
	cfg = writeConfig(t, dir, smtpAddr, extra)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(relayLog(cfg))
		}
	})
	return startRelay(t, cfg, smtpAddr), cfg, smtpAddr
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

// doctorOut runs `sluice doctor --config cfg domain` in process with d's
// resolvers, fails the test unless it exits with code, and returns what
// it printed on stdout.
func doctorOut(t *testing.T, d doctorCmd, cfg, domain string, code int) string {
	t.Helper()
	var out, errb bytes.Buffer
	if got := exitCode("doctor", d.run([]string{"--config", cfg, domain}, &out, &errb), &errb); got != code {
		t.Errorf("%s: exit %d, want %d\n%s%s", domain, got, code, out.String(), errb.String())
	}
	return out.String()
}

// startPolicyServer starts a loopback HTTPS server presenting cert that
// serves each MTA-STS policy at https://HOST/.well-known/mta-sts.txt
// (RFC 8461 §3.2) for the hosts in policies, and 404 for anything else;
// fetches, when not nil, counts every request.
func startPolicyServer(t *testing.T, cert tls.Certificate, policies map[string]string, fetches *atomic.Int32) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fetches != nil {
			fetches.Add(1)
		}
		p, ok := policies[r.Host]
		if !ok || r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, p)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}
