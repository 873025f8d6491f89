package outbound

import (
	"context"
	"errors"
	"testing"
	"time"

	"sluice/internal/dnstest"
	"sluice/internal/resolvertest"
	"sluice/internal/selfsigned"
	"sluice/reply"
)

// TestReportSessionDespitePolicy (issue 14 item 4): a session dialled
// for sluice's own TLS-RPT report (WithoutTLSReport) is delivered
// despite the receiver's TLS policy failing (RFC 8460 §3: "MUST deliver
// reports despite any TLS-related failures"), under may, is not
// tallied, and carries one transaction only; the same hop refuses
// ordinary mail (tls-policy), and an operator's tls_policy entry still
// applies to reports.
func TestReportSessionDespitePolicy(t *testing.T) {
	t.Parallel()
	cert, err := selfsigned.New(time.Now(), "mx.dest.test")
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeMX(t, fakeCfg{tls: cert.Config})
	z := dnstest.NewZone("dest.test. 300 IN MX 10 mx.dest.test.", "mx.dest.test. 300 IN A 127.0.0.1")
	res := resolvertest.New(t, z, false)
	// An enforced MTA-STS policy whose patterns leave mx.dest.test out.
	sts := &fakeSource{name: "mta-sts", err: &PolicyFailure{Type: "sts", Result: ResultValidationFailure, Err: errors.New("MX host outside the policy")}}
	client := func(policies map[string]string) (*Client, *TLSResults) {
		results := NewTLSResults()
		ob, _ := testClient(t, nil, "", func(o *Options) {
			o.Resolver, o.Port, o.TLS = res, int(f.addr.Port()), TLSMay
			o.MTASTS, o.TLSResults, o.TLSPolicies = sts, results, policies
		})
		return ob, results
	}

	ob, results := client(nil)
	if _, rep := ob.Dial(context.Background(), "dest.test"); rep == nil || !errors.Is(rep.Err, reply.ErrTLSPolicy) {
		t.Fatalf("ordinary mail: Dial = %v, want a tls-policy failure", rep)
	}
	results.Take()
	results.KeepDeltas()
	s, rep := ob.Dial(WithoutTLSReport(context.Background()), "dest.test")
	if rep != nil {
		t.Fatalf("report: Dial = %v, want a session despite the policy", rep)
	}
	defer s.Close()
	if req, _ := s.TLSPolicy(); req.Source != reportSource || req.Mode != TLSMay || !s.TLS() {
		t.Errorf("report session: requirement %+v, TLS %v; want may with TLS", req, s.TLS())
	}
	if got := s.Send(context.Background(), testMsg("r@dest.test")); len(got) != 1 || got[0].Code != 250 {
		t.Fatalf("report not delivered: %v", got)
	}
	if s.Usable() {
		t.Error("the report's session would carry other mail")
	}
	if d := results.Take(); d != nil {
		t.Errorf("the report's own session was tallied: %v", d)
	}

	// The operator's own policy for the domain is not relaxed.
	ob, _ = client(map[string]string{"dest.test": TLSVerify})
	if _, rep := ob.Dial(WithoutTLSReport(context.Background()), "dest.test"); rep == nil || !errors.Is(rep.Err, reply.ErrTLSPolicy) {
		t.Fatalf("report under tls_policy verify with a self-signed MX: Dial = %v, want a tls-policy failure", rep)
	}
}
