package outbound_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"sluice/internal/dnstest"
	"sluice/internal/fakemx"
	"sluice/internal/resolvertest"
	"sluice/internal/testca"
	"sluice/mtasts"
	"sluice/relay/outbound"
	"sluice/reply"
)

// The certificate cases of the matrix: what the MX presents.
var certCases = []string{"valid", "mismatch", "expired", "self-signed", "no-starttls"}

// matrixRow is one way the TLS policy is decided for example.test.
type matrixRow struct {
	name     string
	tls      string            // delivery.tls
	policies map[string]string // [[delivery.tls_policy]]
	dane     bool              // a DANE source with TLSA 3 1 1 of the presented key
	sts      string            // the MTA-STS policy mode published ("" = none)
	stsMX    string            // its mx pattern
	want     map[string]string // cert case -> outcome
}

// Outcomes.
const (
	plain      = "delivered in plaintext"
	unverified = "delivered over TLS, unverified"
	verified   = "delivered over TLS, verified"
	reported   = "delivered over TLS, unverified; failure reported (testing)"
	plainRep   = "delivered in plaintext; failure reported (testing)"
	refused    = "tls-policy: not delivered, destination paused"
)

func all(o string) map[string]string {
	return map[string]string{"valid": o, "mismatch": o, "expired": o, "self-signed": o, "no-starttls": o}
}

func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

var matrixRows = []matrixRow{
	{name: "none", tls: "none", want: all(plain)},
	{name: "may", tls: "may", want: with(all(unverified), "no-starttls", plain)},
	{name: "encrypt", tls: "encrypt", want: with(all(unverified), "no-starttls", refused)},
	{name: "verify", tls: "verify", want: with(all(refused), "valid", verified)},
	{name: "tls_policy verify over delivery.tls none", tls: "none", policies: map[string]string{"example.test": "verify"}, want: with(all(refused), "valid", verified)},
	{name: "tls_policy dane (TLSA 3 1 1 of the presented key)", tls: "may", policies: map[string]string{"example.test": "dane"}, dane: true, want: with(all(verified), "no-starttls", refused)},
	{name: "DANE found, delivery.tls may", tls: "may", dane: true, want: with(all(verified), "no-starttls", refused)},
	{name: "MTA-STS enforce found, delivery.tls may", tls: "may", sts: "enforce", stsMX: "mx.example.test", want: with(all(refused), "valid", verified)},
	{name: "MTA-STS testing found, delivery.tls may", tls: "may", sts: "testing", stsMX: "mx.example.test", want: with(all(reported), "valid", verified, "no-starttls", plainRep)},
	{name: "MTA-STS enforce, MX not in the policy", tls: "may", sts: "enforce", stsMX: "other.example.test", want: all(refused)},
	{name: "tls_policy mta-sts enforces a testing policy", tls: "may", policies: map[string]string{"example.test": "mta-sts"}, sts: "testing", stsMX: "mx.example.test", want: with(all(refused), "valid", verified)},
	{name: "tls_policy mta-sts, no policy published", tls: "may", policies: map[string]string{"example.test": "mta-sts"}, want: all(refused)},
	{name: "tls_policy may over MTA-STS enforce", tls: "may", policies: map[string]string{"example.test": "may"}, sts: "enforce", stsMX: "mx.example.test", want: with(all(unverified), "no-starttls", plain)},
}

// TestTLSPolicyMatrix runs every mode against every certificate case on
// loopback (issue 14): the test DNS (MX, A, TXT, TLSA with the AD bit),
// an HTTPS MTA-STS policy server with a test CA reached through an
// injected dialer, and the fake MX presenting a certificate that
// matches, does not match, has expired or signs itself, or offering no
// STARTTLS. With TLS_MATRIX=path it writes the matrix there.
func TestTLSPolicyMatrix(t *testing.T) {
	t.Parallel()
	now := time.Now()
	ca, err := testca.New(now)
	if err != nil {
		t.Fatal(err)
	}
	certs := map[string]tls.Certificate{}
	for c, mk := range map[string]func() (tls.Certificate, error){
		"valid": func() (tls.Certificate, error) {
			return ca.Issue(now.Add(-time.Hour), now.Add(time.Hour), "mx.example.test")
		},
		"mismatch": func() (tls.Certificate, error) {
			return ca.Issue(now.Add(-time.Hour), now.Add(time.Hour), "other.example.test")
		},
		"expired": func() (tls.Certificate, error) {
			return ca.Issue(now.Add(-48*time.Hour), now.Add(-24*time.Hour), "mx.example.test")
		},
		"self-signed": func() (tls.Certificate, error) { return testca.SelfSigned(now, "mx.example.test") },
	} {
		if certs[c], err = mk(); err != nil {
			t.Fatal(err)
		}
	}
	policyCert, err := ca.Issue(now.Add(-time.Hour), now.Add(time.Hour), "mta-sts.example.test")
	if err != nil {
		t.Fatal(err)
	}

	type cell struct{ row, cert, got string }
	results := make(chan cell, len(matrixRows)*len(certCases))
	t.Run("cases", func(t *testing.T) {
		for _, row := range matrixRows {
			for _, cc := range certCases {
				t.Run(row.name+"/"+cc, func(t *testing.T) {
					t.Parallel()
					got := runMatrixCell(t, ca, certs, policyCert, row, cc)
					results <- cell{row.name, cc, got}
					if want := row.want[cc]; got != want {
						t.Errorf("got %q, want %q", got, want)
					}
				})
			}
		}
	})
	close(results)
	table := map[[2]string]string{}
	for c := range results {
		table[[2]string{c.row, c.cert}] = c.got
	}
	var b strings.Builder
	b.WriteString("issue 14: outbound TLS policy, mode x certificate case -> outcome\n")
	b.WriteString("(relay/outbound TestTLSPolicyMatrix; loopback DNS with AD, HTTPS MTA-STS server with a test CA, fake MX)\n")
	b.WriteString("certificate cases: valid = test-CA-signed for mx.example.test; mismatch = for other.example.test;\n")
	b.WriteString("expired = for mx.example.test, expired yesterday; self-signed = for mx.example.test; no-starttls = STARTTLS not offered\n\n")
	for _, row := range matrixRows {
		fmt.Fprintf(&b, "%s\n", row.name)
		for _, cc := range certCases {
			fmt.Fprintf(&b, "  %-12s -> %s\n", cc, table[[2]string{row.name, cc}])
		}
	}
	t.Log("\n" + b.String())
	if p := os.Getenv("TLS_MATRIX"); p != "" {
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

func runMatrixCell(t *testing.T, ca *testca.CA, certs map[string]tls.Certificate, policyCert tls.Certificate, row matrixRow, cc string) string {
	mxo := fakemx.Options{Addr: "127.0.0.1:0", Hostname: "mx.example.test", Logger: slog.New(slog.DiscardHandler)}
	if cc != "no-starttls" {
		c := certs[cc]
		mxo.STARTTLS, mxo.TLSConfig = true, &tls.Config{Certificates: []tls.Certificate{c}}
	}
	mx, err := fakemx.Start(mxo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mx.Close() })
	port := mx.Addr()[strings.LastIndexByte(mx.Addr(), ':')+1:]

	zone := dnstest.NewZone(
		"example.test. 300 IN MX 10 mx.example.test.",
		"mx.example.test. 300 IN A 127.0.0.1",
	)
	if row.dane && cc != "no-starttls" {
		c := certs[cc]
		sum := sha256.Sum256(c.Leaf.RawSubjectPublicKeyInfo)
		zone.Add(fmt.Sprintf("_%s._tcp.mx.example.test. 300 IN TLSA 3 1 1 %s", port, hex.EncodeToString(sum[:])))
	}
	if row.dane && cc == "no-starttls" {
		// The TLSA of the key the MX should present.
		sum := sha256.Sum256(certs["valid"].Leaf.RawSubjectPublicKeyInfo)
		zone.Add(fmt.Sprintf("_%s._tcp.mx.example.test. 300 IN TLSA 3 1 1 %s", port, hex.EncodeToString(sum[:])))
	}
	if row.sts != "" {
		zone.Add(`_mta-sts.example.test. 300 IN TXT "v=STSv1; id=1;"`)
	}
	res := resolvertest.New(t, zone, true)

	// The MTA-STS policy server, on loopback, reached through the
	// injected dialer whatever address the fetcher asks for.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, fmt.Sprintf("version: STSv1\nmode: %s\nmx: %s\nmax_age: 86400\n", row.sts, row.stsMX))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{policyCert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv.Listener.Addr().String())
	}
	sts, err := mtasts.New(mtasts.Options{Resolver: res, HTTP: mtasts.NewHTTPClient(ca.Pool, dial, 5*time.Second),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}

	results := outbound.NewTLSResults()
	results.KeepDeltas()
	// Every failure names its peers for the report's failure-details
	// (RFC 8460 §4.4), and an MTA-STS outcome carries its policy.
	t.Cleanup(func() {
		for k, d := range results.Take() {
			if k.Type == "sts" && (len(d.PolicyStrings) == 0 || len(d.MXHosts) == 0) {
				t.Errorf("%v: no policy-string or mx-host: %+v", k, d)
			}
			for f := range d.Failures {
				if f.Result == "" || f.ReceivingMX == "" || net.ParseIP(f.ReceivingIP) == nil {
					t.Errorf("%v: failure detail %+v", k, f)
				}
			}
		}
	})
	var p int
	fmt.Sscan(port, &p)
	o := outbound.Options{
		Hostname: "relay.test", TLS: row.tls, TLSPolicies: row.policies, Port: p,
		DialTimeout: 5 * time.Second, CommandTimeout: 5 * time.Second, DataTimeout: 5 * time.Second,
		TLSCacheTTL: time.Minute, Resolver: res, TLSConfig: &tls.Config{RootCAs: ca.Pool},
		MTASTS: sts, TLSResults: results, Logger: slog.New(slog.DiscardHandler),
	}
	if row.dane {
		o.DANE = &outbound.DANESource{Resolver: res}
	}
	ob, err := outbound.New(o)
	if err != nil {
		t.Fatal(err)
	}
	s, rep := ob.Dial(context.Background(), "example.test")
	if rep != nil {
		if errors.Is(rep.Err, reply.ErrTLSPolicy) {
			return refused
		}
		return "other failure: " + rep.String()
	}
	defer s.Close()
	d := &outbound.Delivery{ID: "M1", From: "app@src.test", Rcpts: []string{"a@example.test"}}
	body := "Subject: hi\r\n\r\nhello\r\n"
	d.Body, d.Size = strings.NewReader(body), int64(len(body))
	if got := s.Send(context.Background(), d); len(got) != 1 || got[0].Code != 250 {
		return fmt.Sprintf("not delivered: %v", got)
	}
	_, verifiedOK := s.TLSPolicy()
	keys, counts := results.Snapshot()
	failed := false
	for _, k := range keys {
		if len(counts[k].Failures) > 0 && k.Type == "sts" {
			failed = true
		}
	}
	switch {
	case !s.TLS() && failed:
		return plainRep
	case !s.TLS():
		return plain
	case verifiedOK:
		return verified
	case failed:
		return reported
	}
	return unverified
}
