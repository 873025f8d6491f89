package dane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"sluice/internal/dnstest"
	"sluice/resolver"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// pki is a CA and certificates it issued, made in the test.
type pki struct {
	caKey  *ecdsa.PrivateKey
	ca     *x509.Certificate
	serial int64
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{caKey: key, serial: 1}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test TA"},
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	return p
}

// leaf issues a server certificate for names, valid from nb to na; with
// self, it is self-signed instead.
func (p *pki) leaf(t testing.TB, self bool, nb, na time.Time, names ...string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: nb, NotAfter: na, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	parent, signer := p.ca, p.caKey
	if self {
		parent, signer = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func rec(usage, sel, match uint8, c *x509.Certificate) Record {
	data := c.Raw
	if sel == SelectorSPKI {
		data = c.RawSubjectPublicKeyInfo
	}
	switch match {
	case MatchSHA256:
		h := sha256.Sum256(data)
		data = h[:]
	case MatchSHA512:
		h := sha512.Sum512(data)
		data = h[:]
	}
	return Record{Usage: usage, Selector: sel, Matching: match, Data: data}
}

func tlsaRR(owner string, r Record) string {
	return fmt.Sprintf("%s 300 IN TLSA %d %d %d %s", owner, r.Usage, r.Selector, r.Matching, hex.EncodeToString(r.Data))
}

// TestVerify: DANE-EE and DANE-TA against good, mismatched, expired and
// misnamed chains (RFC 7672 §3.1.1, §3.1.2, §3.2.2).
func TestVerify(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	other := newPKI(t)
	good, _ := p.leaf(t, false, now.Add(-time.Hour), now.Add(time.Hour), "mx.example.test")
	expired, _ := p.leaf(t, false, now.Add(-48*time.Hour), now.Add(-24*time.Hour), "mx.example.test")
	wild, _ := p.leaf(t, false, now.Add(-time.Hour), now.Add(time.Hour), "*.example.test")
	misnamed, _ := p.leaf(t, false, now.Add(-time.Hour), now.Add(time.Hour), "other.test")
	self, _ := p.leaf(t, true, now.Add(-time.Hour), now.Add(time.Hour), "mx.example.test")
	names := []string{"mx.example.test"}
	auth := func(rs ...Record) Result { return Result{Status: Authenticate, Records: rs, Names: names} }
	tests := []struct {
		name  string
		res   Result
		chain []*x509.Certificate
		ok    bool
	}{
		{"EE 3 1 1", auth(rec(3, 1, 1, good)), []*x509.Certificate{good, p.ca}, true},
		{"EE 3 0 1", auth(rec(3, 0, 1, good)), []*x509.Certificate{good}, true},
		{"EE 3 1 2", auth(rec(3, 1, 2, good)), []*x509.Certificate{good}, true},
		{"EE 3 0 0", auth(rec(3, 0, 0, good)), []*x509.Certificate{good}, true},
		{"EE ignores expiry", auth(rec(3, 1, 1, expired)), []*x509.Certificate{expired}, true},
		{"EE ignores names", auth(rec(3, 1, 1, misnamed)), []*x509.Certificate{misnamed}, true},
		{"EE self-signed", auth(rec(3, 1, 1, self)), []*x509.Certificate{self}, true},
		{"EE mismatched", auth(rec(3, 1, 1, misnamed)), []*x509.Certificate{good, p.ca}, false},
		{"EE does not match the CA", auth(rec(3, 1, 1, p.ca)), []*x509.Certificate{good, p.ca}, false},
		{"TA 2 0 1", auth(rec(2, 0, 1, p.ca)), []*x509.Certificate{good, p.ca}, true},
		{"TA 2 1 2", auth(rec(2, 1, 2, p.ca)), []*x509.Certificate{good, p.ca}, true},
		{"TA wildcard", auth(rec(2, 0, 1, p.ca)), []*x509.Certificate{wild, p.ca}, true},
		{"TA not in chain", auth(rec(2, 0, 1, p.ca)), []*x509.Certificate{good}, false},
		{"TA other CA", auth(rec(2, 0, 1, other.ca)), []*x509.Certificate{good, p.ca}, false},
		{"TA expired leaf", auth(rec(2, 0, 1, p.ca)), []*x509.Certificate{expired, p.ca}, false},
		{"TA wrong name", auth(rec(2, 0, 1, p.ca)), []*x509.Certificate{misnamed, p.ca}, false},
		{"TA self-signed leaf as anchor", auth(rec(2, 0, 1, self)), []*x509.Certificate{self}, true},
		{"PKIX-EE is unusable", auth(rec(1, 1, 1, good)), []*x509.Certificate{good, p.ca}, false},
		{"PKIX-TA is unusable", auth(rec(0, 0, 1, p.ca)), []*x509.Certificate{good, p.ca}, false},
		{"one of several matches", auth(rec(3, 1, 1, misnamed), rec(2, 0, 1, p.ca)), []*x509.Certificate{good, p.ca}, true},
		{"no chain", auth(rec(3, 1, 1, good)), nil, false},
		{"EncryptOnly verifies nothing", Result{Status: EncryptOnly}, []*x509.Certificate{misnamed}, true},
		{"None verifies nothing", Result{}, nil, true},
	}
	for _, tt := range tests {
		err := Verify(tt.res, tt.chain, now)
		if (err == nil) != tt.ok {
			t.Errorf("%s: err %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// TestUsable: RFC 7672 §3.1.3 and RFC 7671 §4 on what a client may use.
func TestUsable(t *testing.T) {
	t.Parallel()
	d32, d64 := make([]byte, 32), make([]byte, 64)
	tests := []struct {
		r  Record
		ok bool
	}{
		{Record{3, 1, 1, d32}, true},
		{Record{2, 0, 2, d64}, true},
		{Record{3, 1, 0, []byte{1}}, true},
		{Record{0, 0, 1, d32}, false},
		{Record{1, 1, 1, d32}, false},
		{Record{4, 1, 1, d32}, false},
		{Record{3, 2, 1, d32}, false},
		{Record{3, 1, 3, d32}, false},
		{Record{3, 1, 1, d64}, false},
		{Record{3, 1, 2, d32}, false},
		{Record{3, 1, 0, nil}, false},
	}
	for _, tt := range tests {
		if Usable(tt.r) != tt.ok {
			t.Errorf("%v: usable %v", tt.r, !tt.ok)
		}
	}
}

// insecure clears the AD bit of replies about some names, as a
// validating resolver does for an unsigned zone among signed ones.
type insecure struct {
	resolver.Transport
	names map[string]bool
}

func (i insecure) Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m, err := i.Transport.Exchange(ctx, name, qtype)
	if err == nil && i.names[strings.TrimSuffix(strings.ToLower(name), ".")] {
		m.AuthenticatedData = false
	}
	return m, err
}

func newResolver(t *testing.T, tr resolver.Transport) *resolver.Resolver {
	t.Helper()
	r, err := resolver.New(resolver.Options{Transport: tr, Workers: 4, MinTTL: time.Second, MaxTTL: time.Hour, MaxEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// TestLookup runs Lookup against the test DNS server, with and without
// the AD bit: good, unusable, absent and failing TLSA RRsets, and MX
// names behind secure and insecure CNAMEs (RFC 7672 §2.1.1, §2.2,
// §2.2.2, §2.2.3).
func TestLookup(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	good, _ := p.leaf(t, false, now.Add(-time.Hour), now.Add(time.Hour), "mx.example.test")
	ee := rec(3, 1, 1, good)
	z := dnstest.NewZone(
		"mx.example.test. 300 IN A 127.0.0.1",
		tlsaRR("_25._tcp.mx.example.test.", ee),
		"unusable.example.test. 300 IN A 127.0.0.1",
		tlsaRR("_25._tcp.unusable.example.test.", rec(1, 1, 1, good)),
		tlsaRR("_25._tcp.unusable.example.test.", Record{3, 1, 1, []byte{1, 2, 3}}),
		"plain.example.test. 300 IN A 127.0.0.1",
		"broken.example.test. 300 IN A 127.0.0.1",
		"alias.example.test. 300 IN CNAME mx.example.test.",
		"alias2.example.test. 300 IN CNAME plain.example.test.",
		tlsaRR("_25._tcp.alias2.example.test.", ee),
		"unsigned.example.test. 300 IN CNAME mx.example.test.",
		"v6.example.test. 300 IN AAAA ::1",
		"example.test. 300 IN MX 10 mx.example.test.",
		"unsignedmx.test. 300 IN MX 10 mx.example.test.",
		tlsaRR("_25._tcp.v6.example.test.", ee),
	)
	z.Fail("_25._tcp.broken.example.test", dns.RcodeServerFailure)
	srv, err := dnstest.Start(dnstest.Options{Answerer: z, AD: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	up, err := resolver.NewUpstream(resolver.UpstreamOptions{Servers: []string{srv.Addr()}, Timeout: 5 * time.Second, Attempts: 1, TrustAD: true})
	if err != nil {
		t.Fatal(err)
	}
	signed := newResolver(t, insecure{up, map[string]bool{"unsigned.example.test": true, "unsignedmx.test": true}})
	srvNoAD, err := dnstest.Start(dnstest.Options{Answerer: z})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srvNoAD.Close)
	upNoAD, _ := resolver.NewUpstream(resolver.UpstreamOptions{Servers: []string{srvNoAD.Addr()}, Timeout: 5 * time.Second, Attempts: 1, TrustAD: true})
	unsigned := newResolver(t, upNoAD)

	tests := []struct {
		name    string
		r       *resolver.Resolver
		host    string
		trust   bool
		status  Status
		base    string
		wantErr bool
	}{
		{"good", signed, "mx.example.test", true, Authenticate, "mx.example.test", false},
		{"good, AD not trusted", signed, "mx.example.test", false, None, "", false},
		{"good, no AD", unsigned, "mx.example.test", true, None, "", false},
		{"unusable only", signed, "unusable.example.test", true, EncryptOnly, "unusable.example.test", false},
		{"no TLSA", signed, "plain.example.test", true, None, "", false},
		{"TLSA SERVFAIL", signed, "broken.example.test", true, None, "", true},
		{"secure CNAME: expanded name", signed, "alias.example.test", true, Authenticate, "mx.example.test", false},
		{"secure CNAME: original name", signed, "alias2.example.test", true, Authenticate, "alias2.example.test", false},
		{"insecure CNAME", signed, "unsigned.example.test", true, None, "", false},
		{"IPv6 only", signed, "v6.example.test", true, Authenticate, "v6.example.test", false},
	}
	for _, tt := range tests {
		res, err := Lookup(context.Background(), tt.r, tt.host, Port, tt.trust)
		if (err != nil) != tt.wantErr || res.Status != tt.status || res.Base != tt.base {
			t.Errorf("%s: %v %q, err %v; want %v %q, error %v", tt.name, res.Status, res.Base, err, tt.status, tt.base, tt.wantErr)
		}
	}
	// RFC 7672 §2.2.1: DANE for an MX host needs a secure MX RRset.
	for _, tt := range []struct {
		domain string
		status Status
	}{{"example.test", Authenticate}, {"unsignedmx.test", None}} {
		res, err := LookupMX(context.Background(), signed, tt.domain, "mx.example.test", Port, true)
		if err != nil || res.Status != tt.status {
			t.Errorf("LookupMX %s: %v, %v; want %v", tt.domain, res.Status, err, tt.status)
		}
	}
	// The names for DANE-TA checks behind a CNAME are both names.
	res, _ := Lookup(context.Background(), signed, "alias.example.test", Port, true)
	if strings.Join(res.Names, ",") != "mx.example.test,alias.example.test" {
		t.Errorf("names %v", res.Names)
	}
	if srv.Count("_25._tcp.unsigned.example.test", dns.TypeTLSA) != 0 {
		t.Error("TLSA asked for a host behind an insecure CNAME")
	}
}

// TestConfigHandshake: the tls.Config from Config completes a handshake
// with a matching server and aborts one with a mismatched server.
func TestConfigHandshake(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	good, key := p.leaf(t, false, now.Add(-time.Hour), now.Add(time.Hour), "mx.example.test")
	other, _ := p.leaf(t, true, now.Add(-time.Hour), now.Add(time.Hour), "mx.example.test")
	serverCert := tls.Certificate{Certificate: [][]byte{good.Raw, p.ca.Raw}, PrivateKey: key}
	for _, tt := range []struct {
		name string
		r    Record
		ok   bool
	}{
		{"match", rec(3, 1, 1, good), true},
		{"TA match", rec(2, 1, 1, p.ca), true},
		{"mismatch", rec(3, 1, 1, other), false},
	} {
		c, s := net.Pipe()
		go func() {
			ts := tls.Server(s, &tls.Config{Certificates: []tls.Certificate{serverCert}})
			_ = ts.Handshake()
			s.Close()
		}()
		res := Result{Status: Authenticate, Records: []Record{tt.r}, Names: []string{"mx.example.test"}}
		tc := tls.Client(c, Config(nil, res, "mx.example.test", func() time.Time { return now }))
		err := tc.Handshake()
		c.Close() // not tc.Close: its close_notify would wait on the synchronous pipe
		if (err == nil) != tt.ok {
			t.Errorf("%s: handshake %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrNoMatch) {
			t.Errorf("%s: %v is not ErrNoMatch", tt.name, err)
		}
	}
}
