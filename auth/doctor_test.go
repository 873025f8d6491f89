package auth

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
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
	r, err := Doctor(context.Background(), Options{Mode: ModeEnforce, OutboundIPs: ips, Keys: keys, Resolver: fake}, "good.test")
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
	r, err := Doctor(context.Background(), Options{OutboundIPs: testIPs, Resolver: newFakeDNS()}, "bare.test")
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
