package outbound

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"

	"sluice/reply"
)

func testResolver() *fakeResolver {
	return &fakeResolver{
		mx: map[string][]*net.MX{
			"mx.test":      {{Host: "b.mx.test.", Pref: 20}, {Host: "a.mx.test.", Pref: 10}},
			"null.test":    {{Host: ".", Pref: 0}},
			"partial.test": {{Host: "dead.mx.test", Pref: 10}, {Host: "a.mx.test", Pref: 20}},
			"allDead.test": {{Host: "dead.mx.test", Pref: 10}},
			"equal.test":   {{Host: "a.mx.test", Pref: 10}, {Host: "c.mx.test", Pref: 10}},
		},
		hosts: map[string][]string{
			"a.mx.test":     {"192.0.2.1"},
			"b.mx.test":     {"192.0.2.2", "2001:db8::2"},
			"c.mx.test":     {"192.0.2.3"},
			"implicit.test": {"192.0.2.9"},
			"smart.test":    {"192.0.2.7"},
		},
		mxErr: map[string]error{
			"temp.test": &net.DNSError{Err: "server misbehaving", Name: "temp.test", IsTemporary: true},
		},
	}
}

func TestNextHops(t *testing.T) {
	t.Parallel()
	hop := func(h, a, mode string, auth bool) Hop {
		return Hop{Host: h, Addr: netip.MustParseAddrPort(a), TLS: CanonicalTLSMode(mode), Auth: auth}
	}
	via := func(v string, h Hop) Hop { h.Via = v; return h }
	tests := []struct {
		name      string
		smarthost bool
		domain    string
		want      []Hop
		wantRep   *reply.Reply // Err is only checked for presence
	}{
		{name: "route", domain: "Routed.TEST", want: []Hop{via("route", hop("127.0.0.1", "127.0.0.1:2601", "none", false))}},
		{name: "route wins over smarthost", smarthost: true, domain: "routed.test", want: []Hop{via("route", hop("127.0.0.1", "127.0.0.1:2601", "none", false))}},
		{name: "smarthost", smarthost: true, domain: "mx.test", want: []Hop{via("smarthost", hop("smart.test", "192.0.2.7:587", "require", true))}},
		{name: "MX preference order", domain: "mx.test", want: []Hop{
			hop("a.mx.test", "192.0.2.1:2525", "opportunistic", false),
			hop("b.mx.test", "192.0.2.2:2525", "opportunistic", false),
			hop("b.mx.test", "[2001:db8::2]:2525", "opportunistic", false),
		}},
		{name: "implicit MX", domain: "implicit.test", want: []Hop{hop("implicit.test", "192.0.2.9:2525", "opportunistic", false)}},
		{name: "broken MX host skipped", domain: "partial.test", want: []Hop{hop("a.mx.test", "192.0.2.1:2525", "opportunistic", false)}},
		{name: "null MX", domain: "null.test", wantRep: &reply.Reply{Stage: reply.StageConnect, Code: 556, Enhanced: "5.1.10"}},
		{name: "NXDOMAIN", domain: "nx.invalid", wantRep: &reply.Reply{Stage: reply.StageConnect, Code: 550, Enhanced: "5.1.2"}},
		{name: "temporary DNS failure", domain: "temp.test", wantRep: &reply.Reply{Stage: reply.StageConnect, Err: errors.New("any")}},
		{name: "no MX host resolves", domain: "alldead.test", wantRep: &reply.Reply{Stage: reply.StageConnect, Err: errors.New("any")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := testResolver()
			res.mx["alldead.test"] = res.mx["allDead.test"]
			ob, _ := testClient(t, nil, "", func(o *Options) {
				o.Resolver = res
				o.Port = 2525
				o.Routes = map[string]Route{"routed.test": {Host: "127.0.0.1:2601", TLS: "none"}}
				if tt.smarthost {
					o.Smarthost = &Smarthost{Host: "smart.test:587", Username: "u", Password: "p", TLS: "require"}
				}
			})
			got, err := ob.NextHops(context.Background(), tt.domain)
			if tt.wantRep != nil {
				var he *HopError
				if !errors.As(err, &he) {
					t.Fatalf("err = %v, want HopError", err)
				}
				r := he.Reply
				if r.Stage != tt.wantRep.Stage || r.Code != tt.wantRep.Code || r.Enhanced != tt.wantRep.Enhanced || (r.Err != nil) != (tt.wantRep.Err != nil) {
					t.Fatalf("reply = %+v, want %+v", r, *tt.wantRep)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("hops = %v\nwant   %v", got, tt.want)
			}
		})
	}
}

func TestNextHopsEqualPreferenceBothPresent(t *testing.T) {
	t.Parallel()
	ob, _ := testClient(t, nil, "", func(o *Options) { o.Resolver = testResolver() })
	hops, err := ob.NextHops(context.Background(), "equal.test")
	if err != nil {
		t.Fatal(err)
	}
	hosts := []string{hops[0].Host, hops[1].Host}
	slices.Sort(hosts)
	if len(hops) != 2 || !slices.Equal(hosts, []string{"a.mx.test", "c.mx.test"}) {
		t.Fatalf("hops = %v", hops)
	}
}

// TestMXHosts: grouping reads the MX hosts in preference order, the
// domain itself for an implicit MX, nothing where a route or the
// smarthost decides; an answer is the resolver's to cache, so grouping
// and then dialling ask DNS once.
func TestMXHosts(t *testing.T) {
	t.Parallel()
	res := testResolver()
	ob, _ := testClient(t, nil, "", func(o *Options) {
		o.Resolver = res
		o.Routes = map[string]Route{"routed.test": {Host: "127.0.0.1:2601", TLS: TLSNone}}
	})
	ctx := context.Background()
	tests := []struct {
		domain  string
		want    []string
		wantErr bool
	}{
		{"mx.test", []string{"a.mx.test", "b.mx.test"}, false},
		{"implicit.test", []string{"implicit.test"}, false},
		{"routed.test", nil, false},
		{"null.test", nil, true},
		{"nx.invalid", nil, true},
		{"temp.test", nil, true},
	}
	for _, tt := range tests {
		got, err := ob.MXHosts(ctx, tt.domain)
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("MXHosts(%s) = %v, %v; want %v (error %v)", tt.domain, got, err, tt.want, tt.wantErr)
		}
	}
	calls := res.mxQueries()
	if _, err := ob.MXHosts(ctx, "mx.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.NextHops(ctx, "mx.test"); err != nil {
		t.Fatal(err)
	}
	if n := res.mxQueries(); n != calls {
		t.Errorf("cached lookups reached DNS: %d -> %d queries", calls, n)
	}

	// A smarthost takes every domain without a route: nothing to group by.
	sh, _ := testClient(t, nil, "", func(o *Options) {
		o.Resolver = res
		o.Smarthost = &Smarthost{Host: "smart.test:25", TLS: TLSOpportunistic}
	})
	if got, err := sh.MXHosts(ctx, "mx.test"); got != nil || err != nil {
		t.Errorf("smarthost MXHosts = %v, %v", got, err)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	with := func(f func(o *Options)) Options {
		o := testOptions()
		f(&o)
		return o
	}
	tests := []struct {
		name string
		o    Options
	}{
		{"no hostname", with(func(o *Options) { o.Hostname = "" })},
		{"bad hostname", with(func(o *Options) { o.Hostname = "a b" })},
		{"bad tls", with(func(o *Options) { o.TLS = "maybe" })},
		{"bad route", with(func(o *Options) { o.Routes = map[string]Route{"d.test": {Host: "nohost", TLS: TLSNone}} })},
		{"bad route tls", with(func(o *Options) { o.Routes = map[string]Route{"d.test": {Host: "h.test:25", TLS: "x"}} })},
		{"bad smarthost", with(func(o *Options) { o.Smarthost = &Smarthost{Host: "nohost", TLS: TLSNone} })},
		// Nothing is filled in (issue 9 item 21): these zeros used to
		// become opportunistic, 25, 30 s, 5 min, 10 min and 5 min.
		{"no tls mode", with(func(o *Options) { o.TLS = "" })},
		{"route without tls mode", with(func(o *Options) { o.Routes = map[string]Route{"d.test": {Host: "h.test:25"}} })},
		{"no port", with(func(o *Options) { o.Port = 0 })},
		{"no dial timeout", with(func(o *Options) { o.DialTimeout = 0 })},
		{"no command timeout", with(func(o *Options) { o.CommandTimeout = 0 })},
		{"no data timeout", with(func(o *Options) { o.DataTimeout = 0 })},
		{"no cache lifetime", with(func(o *Options) { o.TLSCacheTTL = 0 })},
		{"no resolver", with(func(o *Options) { o.Resolver = nil })},
	}
	if _, err := New(testOptions()); err != nil {
		t.Fatalf("options from the default config refused: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(tt.o); err == nil {
				t.Fatal("no error")
			}
		})
	}
}
