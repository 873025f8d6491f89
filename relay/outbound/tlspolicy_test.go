package outbound

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"sluice/reply"
)

// fakeSource is a TLSSource that answers from a table.
type fakeSource struct {
	name string
	req  map[string]TLSRequirement // host -> requirement
	err  error
}

func (f *fakeSource) TLSFor(_ context.Context, domain, host string, _ uint16) (TLSRequirement, bool, error) {
	if f.err != nil {
		return TLSRequirement{}, false, f.err
	}
	r, ok := f.req[host]
	if ok {
		r.Source, r.PolicyDomain = f.name, domain
	}
	return r, ok, nil
}

// TestTLSRequirementPrecedence: a tls_policy entry, then the route's or
// smarthost's mode, then DANE, then MTA-STS, then delivery.tls (issue
// 14 item 1).
func TestTLSRequirementPrecedence(t *testing.T) {
	t.Parallel()
	dane := &fakeSource{name: "dane", req: map[string]TLSRequirement{"mx.dane.test": {Mode: TLSVerify, PolicyType: "tlsa"}}}
	sts := &fakeSource{name: "mta-sts", req: map[string]TLSRequirement{
		"mx.dane.test": {Mode: TLSVerify, PolicyType: "sts"},
		"mx.sts.test":  {Mode: TLSVerify, PolicyType: "sts"},
		"mx.testing":   {Mode: TLSVerify, PolicyType: "sts", ReportOnly: true},
	}}
	mx := func(host string) Hop {
		return Hop{Host: host, Addr: netip.MustParseAddrPort("192.0.2.1:25"), TLS: TLSMay}
	}
	route := func(host, mode string) Hop { h := mx(host); h.TLS, h.Via = mode, "route"; return h }
	tests := []struct {
		name       string
		policies   map[string]string
		noDANE     bool
		daneErr    error
		domain     string
		hop        Hop
		wantMode   string
		wantSource string
		wantReport bool
		wantErr    bool
	}{
		{name: "delivery.tls when nothing else", domain: "plain.test", hop: mx("mx.plain.test"), wantMode: TLSMay, wantSource: "delivery.tls"},
		{name: "MTA-STS over delivery.tls", domain: "sts.test", hop: mx("mx.sts.test"), wantMode: TLSVerify, wantSource: "mta-sts"},
		{name: "MTA-STS testing is report-only", domain: "t.test", hop: mx("mx.testing"), wantMode: TLSVerify, wantSource: "mta-sts", wantReport: true},
		{name: "DANE over MTA-STS", domain: "dane.test", hop: mx("mx.dane.test"), wantMode: TLSVerify, wantSource: "dane"},
		{name: "route over DANE", domain: "dane.test", hop: route("mx.dane.test", TLSEncrypt), wantMode: TLSEncrypt, wantSource: "route"},
		{name: "tls_policy over route", policies: map[string]string{"dane.test": TLSNone}, domain: "dane.test", hop: route("mx.dane.test", TLSEncrypt), wantMode: TLSNone, wantSource: "tls_policy"},
		{name: "tls_policy over DANE and MTA-STS", policies: map[string]string{"dane.test": TLSEncrypt}, domain: "dane.test", hop: mx("mx.dane.test"), wantMode: TLSEncrypt, wantSource: "tls_policy"},
		{name: "tls_policy dane uses DANE", policies: map[string]string{"dane.test": TLSDANE}, domain: "dane.test", hop: mx("mx.dane.test"), wantMode: TLSVerify, wantSource: "tls_policy:dane"},
		{name: "tls_policy dane without TLSA fails", policies: map[string]string{"sts.test": TLSDANE}, domain: "sts.test", hop: mx("mx.sts.test"), wantErr: true},
		{name: "tls_policy dane without DANE fails", noDANE: true, policies: map[string]string{"dane.test": TLSDANE}, domain: "dane.test", hop: mx("mx.dane.test"), wantErr: true},
		{name: "tls_policy mta-sts enforces a testing policy", policies: map[string]string{"t.test": TLSMTASTS}, domain: "t.test", hop: mx("mx.testing"), wantMode: TLSVerify, wantSource: "tls_policy:mta-sts"},
		{name: "tls_policy mta-sts without a policy fails", policies: map[string]string{"plain.test": TLSMTASTS}, domain: "plain.test", hop: mx("mx.plain.test"), wantErr: true},
		{name: "a failed DANE lookup fails the hop", daneErr: errors.New("SERVFAIL"), domain: "sts.test", hop: mx("mx.sts.test"), wantErr: true},
		{name: "route mode mta-sts asks MTA-STS", domain: "sts.test", hop: route("mx.sts.test", TLSMTASTS), wantMode: TLSVerify, wantSource: "route:mta-sts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ob, _ := testClient(t, nil, "", func(o *Options) {
				o.TLS = TLSMay
				o.TLSPolicies = tt.policies
				o.MTASTS = sts
				if !tt.noDANE {
					d := *dane
					d.err = tt.daneErr
					o.DANE = &d
				}
			})
			req, err := ob.requirement(context.Background(), tt.domain, tt.hop)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("requirement = %+v, want an error", req)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.Mode != tt.wantMode || req.Source != tt.wantSource || req.ReportOnly != tt.wantReport {
				t.Errorf("requirement = %+v, want mode %s from %s (report-only %v)", req, tt.wantMode, tt.wantSource, tt.wantReport)
			}
		})
	}
}

// TestTLSPolicyFailureMovesToNextMX: a hop that fails the policy before
// any connection is a tls-policy reply, and Dial tries the next MX.
func TestTLSPolicyFailureReply(t *testing.T) {
	t.Parallel()
	ob, rec := testClient(t, nil, "", func(o *Options) {
		o.Routes = map[string]Route{"dest.test": {Host: "127.0.0.1:1", TLS: TLSDANE}}
	})
	_, rep := ob.Dial(context.Background(), "dest.test")
	if rep == nil || !errors.Is(rep.Err, reply.ErrTLSPolicy) {
		t.Fatalf("reply = %v, want a tls-policy failure", rep)
	}
	if rec.count() != 0 {
		t.Errorf("dials = %d: a hop that fails its policy is not dialled", rec.count())
	}
	if !tryNext(rep) {
		t.Error("a tls-policy failure of one hop must move on to the next")
	}
}

// TestTLSResultsTotals: the tally sums over policy domains for the
// metric, and a nil tally records and reports nothing.
func TestTLSResultsTotals(t *testing.T) {
	t.Parallel()
	r := NewTLSResults()
	r.Success("a.test", "sts")
	r.Success("b.test", "sts")
	r.Failure("a.test", "sts", ResultExpired)
	r.Failure("c.test", "tlsa", ResultValidationFailure)
	got := r.Totals()
	want := map[[2]string]uint64{{"sts", "success"}: 2, {"sts", ResultExpired}: 1, {"tlsa", ResultValidationFailure}: 1}
	if len(got) != len(want) {
		t.Fatalf("totals = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("totals[%v] = %d, want %d", k, got[k], v)
		}
	}
	keys, counts := r.Snapshot()
	if len(keys) != 3 || keys[0].Domain != "a.test" || counts[keys[0]].Successes != 1 || counts[keys[0]].Failures[ResultExpired] != 1 {
		t.Errorf("snapshot = %v %v", keys, counts)
	}
	var none *TLSResults
	none.Success("a.test", "sts")
	none.Failure("a.test", "sts", ResultExpired)
	if none.Totals() != nil {
		t.Error("a nil tally reports")
	}
}

// TestTLSResultsTake: with deltas kept (TLS-RPT on), Take returns the
// outcomes since the last Take with their failure details and policy,
// and starts afresh; the cumulative tally is untouched. Without
// KeepDeltas nothing accumulates for a reporter that is not there.
func TestTLSResultsTake(t *testing.T) {
	t.Parallel()
	r := NewTLSResults()
	r.Success("a.test", "sts")
	if d := r.Take(); d != nil {
		t.Fatalf("deltas kept without KeepDeltas: %v", d)
	}
	r.KeepDeltas()
	fail := TLSOutcome{Domain: "a.test", Type: "sts", PolicyStrings: []string{"version: STSv1"}, MXHosts: []string{"mx.a.test"},
		Detail: TLSFailureDetail{Result: ResultExpired, SendingIP: "192.0.2.1", ReceivingMX: "mx.a.test", ReceivingIP: "192.0.2.25"}}
	r.Record(fail)
	r.Record(fail)
	r.Success("a.test", "sts")
	d := r.Take()
	got := d[TLSPolicyKey{"a.test", "sts"}]
	if got == nil || got.Successes != 1 || got.Failures[fail.Detail] != 2 || got.MXHosts[0] != "mx.a.test" {
		t.Fatalf("delta = %+v", got)
	}
	if d := r.Take(); d != nil {
		t.Errorf("second Take = %v, want nothing", d)
	}
	if tot := r.Totals(); tot[[2]string{"sts", "success"}] != 2 || tot[[2]string{"sts", ResultExpired}] != 2 {
		t.Errorf("totals = %v", tot)
	}
}
