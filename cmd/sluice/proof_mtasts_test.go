package main

import (
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
	now := time.Now()
	ca, err := testca.New(now)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(names ...string) tls.Certificate {
		c, err := ca.Issue(now.Add(-time.Hour), now.Add(time.Hour), names...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := startFakeMX(t, fakemx.Options{STARTTLS: true, TLSConfig: &tls.Config{Certificates: []tls.Certificate{issue("mx.sts.test")}}})
	_, port, _ := net.SplitHostPort(a.Addr())
	b := startFakeMX(t, fakemx.Options{Addr: "127.0.0.2:" + port, STARTTLS: true, TLSConfig: &tls.Config{Certificates: []tls.Certificate{issue("mx.rogue.test")}}})

	var fetches atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if r.URL.Path != "/.well-known/mta-sts.txt" || (r.Host != "mta-sts.sts.test" && r.Host != "mta-sts.rogue.test") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmax_age: 86400\r\n")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{issue("mta-sts.sts.test", "mta-sts.rogue.test")}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, httpsPort, _ := net.SplitHostPort(srv.Listener.Addr().String())

	zone := dnstest.NewZone(
		"test. 300 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 1",
		"sts.test. 300 IN MX 10 mx.sts.test.",
		"mx.sts.test. 300 IN A 127.0.0.1",
		`_mta-sts.sts.test. 300 IN TXT "v=STSv1; id=1"`,
		"mta-sts.sts.test. 300 IN A 127.0.0.1",
		"rogue.test. 300 IN MX 10 mx.rogue.test.",
		"mx.rogue.test. 300 IN A 127.0.0.2",
		`_mta-sts.rogue.test. 300 IN TXT "v=STSv1; id=1"`,
		"mta-sts.rogue.test. 300 IN A 127.0.0.1",
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
tls = "may"
resolver = %q
resolver_min_ttl = "1s"
ca_file = %q
mta_sts = true
mta_sts_port = %s
`, port, ns.Addr(), caFile, httpsPort))
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(relayLog(cfg))
		}
	})
	startRelay(t, cfg, smtpAddr)
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
