package auth

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func doctorZone(t testing.TB) (*fakeDNS, []KeyConfig) {
	f := newFakeDNS()
	f.txt["good.test"] = []string{"v=spf1 ip4:192.0.2.7 -all"}
	f.txt["_dmarc.good.test"] = []string{"v=DMARC1; p=reject; adkim=s"}
	f.ptr["192.0.2.7"] = []string{"mta.good.test."}
	f.ip["mta.good.test"] = []string{"192.0.2.7"}
	f.ptr["192.0.2.8"] = []string{"liar.good.test."}
	f.ip["liar.good.test"] = []string{"198.51.100.9"}
	keys := []KeyConfig{
		keyFixture(t, f, "good.test", "ok", "ed25519", false),
		keyFixture(t, nil, "good.test", "unpublished", "ed25519", false),
		keyFixture(t, nil, "good.test", "stale", "rsa", false),
	}
	// "stale" publishes a record for another key.
	_, other, err := Keygen("good.test", "x", "ed25519", t.TempDir()+"/other.pem")
	if err != nil {
		t.Fatal(err)
	}
	f.txt["stale._domainkey.good.test"] = []string{other}
	return f, keys
}

func TestDoctor(t *testing.T) {
	t.Parallel()
	fake, keys := doctorZone(t)
	ips := []netip.Addr{netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("192.0.2.8")}
	r, err := Doctor(context.Background(), testOptions(func(o *Options) { o.Mode = ModeEnforce; o.OutboundIPs = ips; o.Keys = keys; o.Resolver = fake }), "good.test")
	if err != nil {
		t.Fatal(err)
	}
	if r.SPF.Record != "v=spf1 ip4:192.0.2.7 -all" || len(r.SPF.Results) != 2 || r.SPF.Results[0].Result != "pass" || r.SPF.Results[1].Result != "fail" {
		t.Errorf("SPF %+v", r.SPF)
	}
	dk := map[string]DoctorDKIM{}
	for _, d := range r.DKIM {
		dk[d.Selector] = d
	}
	if d := dk["ok"]; !d.Published || !d.Matches {
		t.Errorf("ok selector %+v", d)
	}
	if d := dk["unpublished"]; d.Published || d.Error != "not published" {
		t.Errorf("unpublished selector %+v", d)
	}
	if d := dk["stale"]; !d.Published || d.Matches {
		t.Errorf("stale selector %+v", d)
	}
	if r.DMARC.Policy != "reject" || r.DMARC.ADKIM != "s" || r.DMARC.ASPF != "r" || r.DMARC.FoundAt != "good.test" {
		t.Errorf("DMARC %+v", r.DMARC)
	}
	if len(r.PTR) != 2 || !r.PTR[0].ForwardConfirmed || r.PTR[0].Names[0] != "mta.good.test" || r.PTR[1].ForwardConfirmed {
		t.Errorf("PTR %+v", r.PTR)
	}

	text := r.Text()
	for _, want := range []string{
		"Domain: good.test",
		"record: v=spf1 ip4:192.0.2.7 -all",
		"192.0.2.8  fail",
		"ok._domainkey.good.test",
		"not published",
		"published key differs from the key file",
		"policy: reject  adkim=s  aspf=r",
		"mta.good.test",
		"NOT forward-confirmed",
		"SPF of good.test does not cover 192.0.2.8",
		"To fix:",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	js, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var back DoctorReport
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if back.Domain != "good.test" || len(back.DKIM) != 3 || back.DMARC.Policy != "reject" || len(back.Problems) != len(r.Problems) {
		t.Errorf("JSON round trip: %s", js)
	}
	if !strings.Contains(string(js), `"forward_confirmed": true`) {
		t.Errorf("JSON lacks forward_confirmed: %s", js)
	}
}

func TestDoctorNothingPublished(t *testing.T) {
	t.Parallel()
	// The domain exists (it has an address) but publishes nothing for mail.
	fake := newFakeDNS()
	fake.ip["bare.test"] = []string{"192.0.2.50"}
	r, err := Doctor(context.Background(), testOptions(func(o *Options) { o.OutboundIPs = testIPs; o.Resolver = fake }), "bare.test")
	if err != nil {
		t.Fatal(err)
	}
	text := r.Text()
	for _, want := range []string{"publishes no SPF record", "no DKIM key is configured", "publishes no DMARC record", "no forward-confirmed PTR"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
}

// failingDNS answers every lookup with the same failure, as a broken
// resolver does.
type failingDNS struct {
	err  func(name string) error
	hang bool // wait for the lookup's deadline first (a timeout)
}

func (f failingDNS) fail(ctx context.Context, name string) error {
	if f.hang {
		<-ctx.Done()
	}
	return f.err(name)
}
func (f failingDNS) LookupTXT(ctx context.Context, n string) ([]string, error) {
	return nil, f.fail(ctx, n)
}
func (f failingDNS) LookupIPAddr(ctx context.Context, n string) ([]net.IPAddr, error) {
	return nil, f.fail(ctx, n)
}
func (f failingDNS) LookupMX(ctx context.Context, n string) ([]*net.MX, error) {
	return nil, f.fail(ctx, n)
}
func (f failingDNS) LookupAddr(ctx context.Context, n string) ([]string, error) {
	return nil, f.fail(ctx, n)
}

// healthyZone publishes everything good.test needs for the key it returns.
func healthyZone(t testing.TB) (*fakeDNS, KeyConfig) {
	f := newFakeDNS()
	f.txt["good.test"] = []string{"v=spf1 ip4:192.0.2.7 -all"}
	f.mx["good.test"] = []*net.MX{{Host: "mx.good.test.", Pref: 10}}
	f.txt["_dmarc.good.test"] = []string{"v=DMARC1; p=reject"}
	f.ptr["192.0.2.7"] = []string{"mta.good.test."}
	f.ip["mta.good.test"] = []string{"192.0.2.7"}
	return f, keyFixture(t, f, "good.test", "s1", "ed25519", false)
}

// TestDoctorDNSFailures (issue 9 item 19): under a broken resolver doctor
// says first that lookups failed, gives no advice that assumes a record is
// absent ("publish TXT", "add a TXT record", "set its reverse DNS"), and
// its report is an error (exit 1 in cmd/sluice). A healthy domain and a
// domain that does not exist are the controls.
func TestDoctorDNSFailures(t *testing.T) {
	t.Parallel()
	servfail := func(n string) error { return &net.DNSError{Err: "server misbehaving", Name: n, IsTemporary: true} }
	refused := func(n string) error { return &net.DNSError{Err: "server misbehaving", Name: n} } // Go's REFUSED: not temporary
	timeout := func(n string) error {
		return &net.DNSError{Err: "i/o timeout", Name: n, IsTimeout: true, IsTemporary: true}
	}
	partial, key := healthyZone(t) // only the DKIM selector and the PTR fail
	partial.temp["s1._domainkey.good.test"] = true
	partial.temp["192.0.2.7"] = true

	absentAdvice := []string{"publish TXT", "add a TXT record", "add TXT", "set its reverse DNS", "publishes no", "not published", "does not cover"}
	tests := []struct {
		name     string
		resolver Resolver
		failed   []string // substrings of DNSFailures
		text     []string // in the text report
	}{
		{"servfail", failingDNS{err: servfail}, []string{"TXT good.test: server misbehaving", "PTR 192.0.2.7: server misbehaving", "TXT s1._domainkey.good.test", "TXT _dmarc.good.test"}, nil},
		{"refused", failingDNS{err: refused}, []string{"TXT good.test: server misbehaving", "TXT _dmarc.good.test"}, nil},
		{"timeout", failingDNS{err: timeout, hang: true}, []string{"lookup timed out"}, nil},
		{"partial", partial, []string{"TXT s1._domainkey.good.test: server misbehaving", "PTR 192.0.2.7: server misbehaving"},
			[]string{"record: v=spf1 ip4:192.0.2.7 -all", "policy: reject", "not checked: lookup failed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := Doctor(context.Background(), testOptions(func(o *Options) {
				o.OutboundIPs = testIPs
				o.Keys = []KeyConfig{key}
				o.Resolver = tc.resolver
				o.DNSTimeout = 20 * time.Millisecond
			}), "good.test")
			if err != nil {
				t.Fatal(err)
			}
			if r.Err() == nil || !strings.Contains(r.Err().Error(), "DNS lookup(s) failed") {
				t.Errorf("Err() = %v, want the DNS failure", r.Err())
			}
			if r.DomainNotFound {
				t.Error("a failing resolver is not a missing domain")
			}
			joined := strings.Join(r.DNSFailures, "\n")
			for _, want := range tc.failed {
				if !strings.Contains(joined, want) {
					t.Errorf("DNSFailures lack %q:\n%s", want, joined)
				}
			}
			text := r.Text()
			if !strings.HasPrefix(text, "DNS lookups failed: ") || !strings.Contains(strings.SplitN(text, "\n", 2)[0], "the advice below could not be checked") {
				t.Errorf("text does not start with the failure:\n%s", text)
			}
			for _, want := range tc.text {
				if !strings.Contains(text, want) {
					t.Errorf("text lacks %q:\n%s", want, text)
				}
			}
			for _, p := range r.Problems {
				for _, bad := range absentAdvice {
					if strings.Contains(p, bad) {
						t.Errorf("advice assumes an absent record although the lookup failed: %q", p)
					}
				}
			}
			js, err := r.JSON()
			if err != nil {
				t.Fatal(err)
			}
			var back struct {
				DNSFailures    []string `json:"dns_failures"`
				DomainNotFound bool     `json:"domain_not_found"`
				Problems       []string `json:"problems"`
			}
			if err := json.Unmarshal(js, &back); err != nil || len(back.DNSFailures) != len(r.DNSFailures) || back.DomainNotFound {
				t.Errorf("JSON: %v\n%s", err, js)
			}
		})
	}
}

func TestDoctorDomainNotFound(t *testing.T) {
	t.Parallel()
	fake, _ := healthyZone(t)
	key := keyFixture(t, nil, "nosuch.test", "s1", "ed25519", false)
	r, err := Doctor(context.Background(), testOptions(func(o *Options) { o.OutboundIPs = testIPs; o.Keys = []KeyConfig{key}; o.Resolver = fake }), "nosuch.test")
	if err != nil {
		t.Fatal(err)
	}
	if !r.DomainNotFound || len(r.DNSFailures) != 0 {
		t.Fatalf("DomainNotFound=%v failures=%v", r.DomainNotFound, r.DNSFailures)
	}
	if r.Err() == nil || r.Err().Error() != "nosuch.test does not exist in DNS" {
		t.Errorf("Err() = %v", r.Err())
	}
	text := r.Text()
	if !strings.HasPrefix(text, "nosuch.test does not exist in DNS") {
		t.Errorf("text does not start with the missing domain:\n%s", text)
	}
	for _, bad := range []string{"publish TXT", "add a TXT record", "add TXT", "dkim keygen", "publishes no"} {
		if strings.Contains(text, bad) {
			t.Errorf("records to add listed for a domain that does not exist (%q):\n%s", bad, text)
		}
	}
	js, _ := r.JSON()
	if !strings.Contains(string(js), `"domain_not_found": true`) {
		t.Errorf("JSON: %s", js)
	}
}

func TestDoctorHealthy(t *testing.T) {
	t.Parallel()
	fake, key := healthyZone(t)
	r, err := Doctor(context.Background(), testOptions(func(o *Options) { o.OutboundIPs = testIPs; o.Keys = []KeyConfig{key}; o.Resolver = fake }), "good.test")
	if err != nil {
		t.Fatal(err)
	}
	if r.Err() != nil || len(r.Problems) != 0 || len(r.DNSFailures) != 0 || r.DomainNotFound {
		t.Fatalf("Err=%v problems=%v failures=%v", r.Err(), r.Problems, r.DNSFailures)
	}
	if text := r.Text(); !strings.HasPrefix(text, "Domain: good.test") || !strings.HasSuffix(text, "No problems found.\n") {
		t.Errorf("text:\n%s", text)
	}
	js, _ := r.JSON()
	if !strings.Contains(string(js), `"dns_failures": []`) || !strings.Contains(string(js), `"domain_not_found": false`) {
		t.Errorf("JSON: %s", js)
	}
}
