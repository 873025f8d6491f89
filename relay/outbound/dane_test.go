package outbound

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"

	"sluice/internal/dnstest"
	"sluice/internal/resolvertest"
	"sluice/internal/selfsigned"
	"sluice/reply"
)

// TestDANESource (issue 14 item 3): DANE through Dial, against TLSA
// records served with the AD bit: a matching record verifies the
// session; a mismatched one is a tls-policy failure before any mail
// command; an RRset of unusable records still forces TLS, unverified
// (RFC 7672 §2.2); a TLSA lookup that fails makes the host unusable
// (§2.1.1); no TLSA records, or no AD bit, leave delivery.tls in charge.
func TestDANESource(t *testing.T) {
	t.Parallel()
	cert, err := selfsigned.New(time.Now(), "mx.dest.test")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := selfsigned.New(time.Now(), "mx.dest.test")
	expired, _ := selfsigned.New(time.Now().Add(-2*365*24*time.Hour), "mx.dest.test")
	misnamed, _ := selfsigned.New(time.Now(), "other.test")
	spki := func(c *selfsigned.Cert) string {
		h := sha256.Sum256(c.Config.Certificates[0].Leaf.RawSubjectPublicKeyInfo)
		return hex.EncodeToString(h[:])
	}
	full := func(c *selfsigned.Cert) string {
		h := sha256.Sum256(c.Config.Certificates[0].Leaf.Raw)
		return hex.EncodeToString(h[:])
	}
	tests := []struct {
		name         string
		tlsa         string // rdata; "" = none; "SERVFAIL"
		ad           bool
		wantVerified bool
		wantTLS      bool
		wantPolicy   bool             // a tls-policy failure
		serve        *selfsigned.Cert // nil = cert
	}{
		// RFC 7672 §3.1.1: DANE-EE ignores names and dates.
		{name: "EE, expired", tlsa: "3 1 1 " + spki(expired), ad: true, wantVerified: true, wantTLS: true, serve: expired},
		{name: "EE, other name", tlsa: "3 1 1 " + spki(misnamed), ad: true, wantVerified: true, wantTLS: true, serve: misnamed},
		// §3.1.2, §3.2.2: DANE-TA checks both (a self-signed server
		// certificate is its own anchor).
		{name: "TA, good", tlsa: "2 0 1 " + full(cert), ad: true, wantVerified: true, wantTLS: true},
		{name: "TA, expired", tlsa: "2 0 1 " + full(expired), ad: true, wantPolicy: true, serve: expired},
		{name: "TA, other name", tlsa: "2 0 1 " + full(misnamed), ad: true, wantPolicy: true, serve: misnamed},
		{"good 3 1 1", "3 1 1 " + spki(cert), true, true, true, false, nil},
		{"mismatched", "3 1 1 " + spki(other), true, false, false, true, nil},
		{"unusable only", "1 1 1 " + spki(cert), true, false, true, false, nil},
		{"lookup fails", "SERVFAIL", true, false, false, true, nil},
		{"no TLSA", "", true, false, true, false, nil},
		{"good but no AD", "3 1 1 " + spki(cert), false, false, true, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			serve := cert
			if tt.serve != nil {
				serve = tt.serve
			}
			f := newFakeMX(t, fakeCfg{tls: serve.Config, ext: []string{"REQUIRETLS"}})
			port := f.addr.Port()
			z := dnstest.NewZone("dest.test. 300 IN MX 10 mx.dest.test.", "mx.dest.test. 300 IN A 127.0.0.1")
			owner := fmt.Sprintf("_%d._tcp.mx.dest.test", port)
			switch tt.tlsa {
			case "":
			case "SERVFAIL":
				z.Fail(owner, dns.RcodeServerFailure)
			default:
				z.Add(owner + ". 300 IN TLSA " + tt.tlsa)
			}
			res := resolvertest.New(t, z, tt.ad)
			results := NewTLSResults()
			ob, _ := testClient(t, nil, "", func(o *Options) {
				o.Resolver, o.Port, o.TLS = res, int(port), TLSMay
				o.DANE = &DANESource{Resolver: res}
				o.TLSResults = results
			})
			s, rep := ob.Dial(context.Background(), "dest.test")
			// TLS-RPT material (RFC 8460 §4.3.2): DANE outcomes under
			// policy type "tlsa".
			_, tally := results.Snapshot()
			c := tally[TLSPolicyKey{"dest.test", "tlsa"}]
			switch want := map[string]string{"mismatched": ResultTLSAInvalid, "lookup fails": ResultDNSSECInvalid,
				"TA, expired": ResultTLSAInvalid, "TA, other name": ResultTLSAInvalid}[tt.name]; {
			case want != "":
				if c.Failures[want] != 1 {
					t.Errorf("TLS results %+v, want one %s failure", tally, want)
				}
			case tt.wantVerified:
				if c.Successes != 1 || len(c.Failures) != 0 {
					t.Errorf("TLS results %+v, want one tlsa success", tally)
				}
			}
			if tt.wantPolicy {
				if rep == nil || !errors.Is(rep.Err, reply.ErrTLSPolicy) {
					t.Fatalf("Dial = %v, want a tls-policy failure", rep)
				}
				if f.countVerb("MAIL") != 0 {
					t.Error("a mail command was sent")
				}
				return
			}
			if rep != nil {
				t.Fatalf("Dial: %v", rep)
			}
			defer s.Close()
			req, verified := s.TLSPolicy()
			if s.TLS() != tt.wantTLS || verified != tt.wantVerified {
				t.Fatalf("TLS %v verified %v (requirement %+v), want %v %v", s.TLS(), verified, req, tt.wantTLS, tt.wantVerified)
			}
			// A REQUIRETLS message goes exactly when DANE verified the hop.
			d := testMsg("a@dest.test")
			d.RequireTLS = true
			if got := s.Send(context.Background(), d)[0]; (got.Code == 250) != tt.wantVerified {
				t.Errorf("REQUIRETLS message: %v", got)
			}
		})
	}
}
