package main

import (
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"sluice/internal/fakemx"
)

// TestProofDeliveryThroughDNS (issue 10 item 2): the built binary finds
// its next hops through the DNS server delivery.resolver names (a real
// one on loopback, internal/dnstest), and connects to the MX hosts on
// delivery.port: MX records, a CNAME, the implicit MX of a domain with
// only an address, the null MX (RFC 7505: bounced 5.1.10), NXDOMAIN
// (bounced 5.1.2), and a SERVFAIL, which defers until the zone is fixed.
// The bounces go back to the sender's domain through DNS as well.
func TestProofDeliveryThroughDNS(t *testing.T) {
	t.Parallel()
	mx := startFakeMX(t, fakemx.Options{})
	_, port, _ := net.SplitHostPort(mx.Addr())
	zone := testZone(
		"dest.test. 300 IN MX 10 mx.dest.test.",
		"mx.dest.test. 300 IN A 127.0.0.1",
		"alias.test. 300 IN CNAME dest.test.",
		"implicit.test. 300 IN A 127.0.0.1",
		"null.test. 300 IN MX 0 .",
	)
	zone.Fail("later.test", dns.RcodeServerFailure)
	ns := serveDNS(t, zone)

	dir := t.TempDir()
	smtpAddr := freeAddr(t)
	cfg := writeConfig(t, dir, smtpAddr, fmt.Sprintf(`
[delivery]
port = %s
tls = "none"
resolver = %q
resolver_min_ttl = "1s"
`, port, ns.Addr()))
	startRelay(t, cfg, smtpAddr)

	rcpts := []string{"user@dest.test", "user@alias.test", "user@implicit.test", "user@null.test", "user@gone.test", "user@later.test"}
	for i, to := range rcpts {
		msg := fmt.Sprintf("From: app@dest.test\r\nTo: %s\r\nSubject: dns %d\r\nMessage-ID: <dns-%d@dest.test>\r\n\r\nhello\r\n", to, i, i)
		if err := smtp.SendMail(smtpAddr, nil, "app@dest.test", []string{to}, []byte(msg)); err != nil {
			t.Fatalf("submit to %s: %v", to, err)
		}
	}
	delivered := func(addr string) int { return mx.Stats().Recipients[addr].Deliveries }
	eventually(t, 20*time.Second, "delivery through MX, CNAME and implicit MX, and two bounces to the sender", func() bool {
		return delivered("user@dest.test") == 1 && delivered("user@alias.test") == 1 &&
			delivered("user@implicit.test") == 1 && delivered("app@dest.test") == 2
	})
	eventually(t, 10*time.Second, "the SERVFAIL domain deferred", func() bool {
		return strings.Contains(relayLog(cfg), "to=user@later.test") && strings.Contains(relayLog(cfg), "status=deferred")
	})
	if delivered("user@later.test") != 0 {
		t.Fatal("delivered to a domain whose MX lookup failed")
	}
	zone.Fail("later.test", dns.RcodeSuccess)
	zone.Add("later.test. 300 IN MX 10 mx.dest.test.")
	eventually(t, 20*time.Second, "delivery once the zone answers", func() bool { return delivered("user@later.test") == 1 })

	log := relayLog(cfg)
	for _, want := range []string{"to=user@null.test", "5.1.10", "to=user@gone.test", "5.1.2"} {
		if !strings.Contains(log, want) {
			t.Errorf("mail log lacks %q", want)
		}
	}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"dest.test", dns.TypeMX}, {"mx.dest.test", dns.TypeA}, {"implicit.test", dns.TypeA}, {"null.test", dns.TypeMX}, {"gone.test", dns.TypeMX}} {
		if ns.Count(q.name, q.qtype) == 0 {
			t.Errorf("no %s query for %s reached the DNS server", dns.TypeToString[q.qtype], q.name)
		}
	}
	if !ns.Stats().LastDO {
		t.Error("queries do not carry EDNS0 with the DO bit")
	}
	if t.Failed() {
		t.Log(log)
	}
}
