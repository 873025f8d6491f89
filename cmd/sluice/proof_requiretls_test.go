package main

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"sluice/internal/fakemx"
	"sluice/internal/selfsigned"
)

// TestProofREQUIRETLS (issue 14 items 3 and 5) drives the built binary
// against the test DNS server (with the AD bit, delivery.resolver_dnssec
// on) and two fake MXs with their own certificates:
//   - REQUIRETLS is refused in the clear (530 5.7.10) and accepted over
//     TLS;
//   - to a next hop verified by DANE (TLSA 3 1 1) that offers REQUIRETLS,
//     the message is delivered and the parameter passed on;
//   - to a DANE-verified next hop without REQUIRETLS it bounces 5.7.30;
//   - to a next hop without TLSA records (unverified TLS) it bounces
//     5.7.10; mail without REQUIRETLS to both still goes;
//   - the bounces go back to the sender's domain with REQUIRETLS, over
//     DANE, returning headers only.
func TestProofREQUIRETLS(t *testing.T) {
	t.Parallel()
	certA, err := selfsigned.New(time.Now(), "mx.ok.test")
	if err != nil {
		t.Fatal(err)
	}
	certB, err := selfsigned.New(time.Now(), "mx.noreq.test")
	if err != nil {
		t.Fatal(err)
	}
	// A offers REQUIRETLS; B, on the same port of another loopback
	// address (delivery.port is one port for every MX), does not.
	a := startFakeMX(t, fakemx.Options{STARTTLS: true, TLSConfig: certA.Config, REQUIRETLS: true, KeepBodies: true})
	_, port, _ := net.SplitHostPort(a.Addr())
	b := startFakeMX(t, fakemx.Options{Addr: "127.0.0.2:" + port, STARTTLS: true, TLSConfig: certB.Config})
	spki := func(c *selfsigned.Cert) string {
		h := sha256.Sum256(c.Config.Certificates[0].Leaf.RawSubjectPublicKeyInfo)
		return hex.EncodeToString(h[:])
	}
	ns := serveDNS(t, testZone(
		"ok.test. 300 IN MX 10 mx.ok.test.",
		"mx.ok.test. 300 IN A 127.0.0.1",
		fmt.Sprintf("_%s._tcp.mx.ok.test. 300 IN TLSA 3 1 1 %s", port, spki(certA)),
		"noreq.test. 300 IN MX 10 mx.noreq.test.",
		"mx.noreq.test. 300 IN A 127.0.0.2",
		fmt.Sprintf("_%s._tcp.mx.noreq.test. 300 IN TLSA 3 1 1 %s", port, spki(certB)),
		"nodane.test. 300 IN MX 10 mx.nodane.test.",
		"mx.nodane.test. 300 IN A 127.0.0.1",
		"src.test. 300 IN MX 10 mx.ok.test.",
	))
	ns.SetAD(true) // DANE: the zone counts as DNSSEC-signed

	dir := t.TempDir()
	certFile, keyFile := selfSignedCert(t, dir)
	_, cfg, smtpAddr := startRelayIn(t, dir, fmt.Sprintf(`
[tls]
cert_file = %q
key_file = %q

[delivery]
port = %s
tls = "may"
resolver = %q
resolver_dnssec = true
resolver_min_ttl = "1s"
`, certFile, keyFile, port, ns.Addr()))

	send := func(to string, requireTLS, overTLS bool) error {
		dial := func() (*smtp.Client, error) { return smtp.Dial(smtpAddr) }
		if overTLS {
			dial = func() (*smtp.Client, error) {
				return smtp.DialStartTLS(smtpAddr, &tls.Config{InsecureSkipVerify: true})
			}
		}
		c, err := dial()
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.Mail("app@src.test", &smtp.MailOptions{RequireTLS: requireTLS}); err != nil {
			return err
		}
		if err := c.Rcpt(to, nil); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "From: app@src.test\r\nTo: %s\r\nSubject: requiretls %s %v\r\n\r\nconfidential body\r\n", to, to, requireTLS)
		if err := w.Close(); err != nil {
			return err
		}
		return c.Quit()
	}
	// go-smtp's client refuses REQUIRETLS to a server that does not
	// offer it; in the clear, sluice does not offer it.
	if err := send("u@ok.test", true, false); err == nil {
		t.Fatal("REQUIRETLS accepted in the clear")
	}
	rc, _, _ := dialSMTP(t, smtpAddr, "127.0.0.1")
	rc.must("EHLO client.test", 250)
	if code, text := rc.cmd("MAIL FROM:<app@src.test> REQUIRETLS"); code != 530 || !strings.Contains(text, "5.7.10") {
		t.Errorf("REQUIRETLS in the clear: %d %s, want 530 5.7.10", code, text)
	}
	for _, m := range []struct {
		to         string
		requireTLS bool
	}{{"u@ok.test", true}, {"u@noreq.test", true}, {"u@nodane.test", true}, {"plain@noreq.test", false}, {"plain@nodane.test", false}} {
		if err := send(m.to, m.requireTLS, true); err != nil {
			t.Fatalf("submit to %s: %v", m.to, err)
		}
	}
	delivered := func(s *fakemx.Server, addr string) int { return s.Stats().Recipients[addr].Deliveries }
	eventually(t, 30*time.Second, "REQUIRETLS delivery over DANE, plain deliveries, and two bounces back over DANE", func() bool {
		return delivered(a, "u@ok.test") == 1 && delivered(b, "plain@noreq.test") == 1 && delivered(a, "plain@nodane.test") == 1 &&
			delivered(a, "app@src.test") == 2
	})
	if delivered(b, "u@noreq.test") != 0 || delivered(a, "u@nodane.test") != 0 {
		t.Error("a REQUIRETLS message went to a next hop that cannot meet it")
	}
	// One REQUIRETLS MAIL for the message and one for each bounce.
	if n := a.Stats().RequireTLSMails; n != 3 {
		t.Errorf("REQUIRETLS passed on %d times at the DANE-verified MX, want 3 (the message and two bounces)", n)
	}
	log := relayLog(cfg)
	for _, want := range []string{"to=u@noreq.test", "5.7.30", "to=u@nodane.test", "5.7.10"} {
		if !strings.Contains(log, want) {
			t.Errorf("mail log lacks %q", want)
		}
	}
	for _, body := range a.Received() {
		if strings.Contains(string(body), "Delivery Status") && strings.Contains(string(body), "confidential body") {
			t.Errorf("a bounce of a REQUIRETLS message returns its body:\n%s", body)
		}
	}
}
