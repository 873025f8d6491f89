package resolver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestTTLExpiry: an answer is reused until its own TTL passes, then asked
// again; TTLs are clamped to [MinTTL, MaxTTL]. Virtual time.
func TestTTLExpiry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		record string
		life   time.Duration // how long the answer is cached
	}{
		{"own TTL", "a.test. 60 IN MX 10 mx.a.test.", 60 * time.Second},
		{"below the floor", "a.test. 1 IN MX 10 mx.a.test.", 5 * time.Second},
		{"zero TTL", "a.test. 0 IN MX 10 mx.a.test.", 5 * time.Second},
		{"above the ceiling", "a.test. 2592000 IN MX 10 mx.a.test.", 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeDNS(tt.record)
			r, clock := newTest(t, f)
			ctx := context.Background()
			ask := func(wantQueries int) {
				t.Helper()
				a, err := r.MX(ctx, "A.test")
				if err != nil || len(a.Hosts) != 1 || a.Hosts[0] != (MX{Host: "mx.a.test", Pref: 10}) {
					t.Fatalf("MX = %+v, %v", a, err)
				}
				if n := f.count("a.test.", dns.TypeMX); n != wantQueries {
					t.Fatalf("%d queries, want %d", n, wantQueries)
				}
			}
			ask(1)
			clock.Advance(tt.life - time.Second)
			ask(1)
			clock.Advance(time.Second)
			ask(2)
		})
	}
}

// TestNegativeCaching: NXDOMAIN and NODATA are cached for the negative
// TTL of their SOA, min(SOA TTL, MINIMUM) (RFC 2308 §5), within the floor
// and a 3 h cap; without a SOA, and for a failure (SERVFAIL, timeout),
// for the floor (RFC 2308 §7). Virtual time.
func TestNegativeCaching(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		records []string
		ask     string
		qtype   uint16
		fail    int  // rcode the zone answers for ask
		timeout bool // no reply at all
		nx      bool
		wantErr bool
		life    time.Duration
	}{
		{"NXDOMAIN, MINIMUM below SOA TTL", []string{"test. 3600 IN SOA ns.test. h.test. 1 3600 600 86400 60"}, "gone.test", dns.TypeMX, 0, false, true, false, 60 * time.Second},
		{"NXDOMAIN, SOA TTL below MINIMUM", []string{"test. 30 IN SOA ns.test. h.test. 1 3600 600 86400 600"}, "gone.test", dns.TypeA, 0, false, true, false, 30 * time.Second},
		{"NODATA", []string{"test. 3600 IN SOA ns.test. h.test. 1 3600 600 86400 120", "a.test. 300 IN A 192.0.2.1"}, "a.test", dns.TypeMX, 0, false, false, false, 120 * time.Second},
		{"NODATA after a CNAME with a shorter TTL", []string{"test. 3600 IN SOA ns.test. h.test. 1 3600 600 86400 120", "a.test. 20 IN CNAME b.test.", "b.test. 300 IN A 192.0.2.1"}, "a.test", dns.TypeMX, 0, false, false, false, 20 * time.Second},
		{"negative TTL capped at 3h", []string{"test. 86400 IN SOA ns.test. h.test. 1 3600 600 86400 86400"}, "gone.test", dns.TypeMX, 0, false, true, false, 3 * time.Hour},
		{"negative TTL below the floor", []string{"test. 1 IN SOA ns.test. h.test. 1 3600 600 86400 1"}, "gone.test", dns.TypeMX, 0, false, true, false, 5 * time.Second},
		{"SERVFAIL", nil, "broken.test", dns.TypeMX, dns.RcodeServerFailure, false, false, true, 5 * time.Second},
		{"REFUSED", nil, "broken.test", dns.TypeMX, dns.RcodeRefused, false, false, true, 5 * time.Second},
		{"no reply", nil, "broken.test", dns.TypeMX, 0, true, false, true, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeDNS(tt.records...)
			if tt.fail != 0 {
				f.zone.Fail(tt.ask, tt.fail)
			}
			f.noReply = tt.timeout
			r, clock := newTest(t, f)
			ask := func(wantQueries int) {
				t.Helper()
				a, err := r.Lookup(context.Background(), tt.ask, tt.qtype)
				var e *Error
				if tt.wantErr != (err != nil) || (err != nil && !errors.As(err, &e)) {
					t.Fatalf("err = %v, want error %v", err, tt.wantErr)
				}
				if err == nil && (a.NXDomain != tt.nx || len(a.Records) != 0) {
					t.Fatalf("answer %+v, want NXDomain %v and no records", a, tt.nx)
				}
				if tt.timeout && !e.Timeout {
					t.Fatalf("error %v does not say timeout", err)
				}
				if tt.fail != 0 && e.Rcode != tt.fail {
					t.Fatalf("error rcode %d, want %d", e.Rcode, tt.fail)
				}
				if n := f.count(dns.Fqdn(tt.ask), tt.qtype); n != wantQueries {
					t.Fatalf("%d queries, want %d", n, wantQueries)
				}
			}
			ask(1)
			clock.Advance(tt.life - time.Second)
			ask(1)
			clock.Advance(time.Second)
			ask(2)
		})
	}
}

// TestCacheBounded: beyond MaxEntries the least recently stored answers
// are dropped, and answers older than MaxTTL are dropped on the next store.
func TestCacheBounded(t *testing.T) {
	t.Parallel()
	f := newFakeDNS("a.test. 60 IN A 192.0.2.1", "b.test. 60 IN A 192.0.2.2", "c.test. 60 IN A 192.0.2.3", "d.test. 60 IN A 192.0.2.4")
	r, clock := newTest(t, f, func(o *Options) { o.MaxEntries = 3; o.MaxTTL = time.Minute })
	ctx := context.Background()
	for _, n := range []string{"a.test", "b.test", "c.test", "d.test"} {
		if _, err := r.Lookup(ctx, n, dns.TypeA); err != nil {
			t.Fatal(err)
		}
	}
	size := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.cache.Len()
	}
	if n := size(); n != 3 {
		t.Fatalf("cache holds %d answers, want 3", n)
	}
	if _, err := r.Lookup(ctx, "a.test", dns.TypeA); err != nil || f.count("a.test.", dns.TypeA) != 2 {
		t.Fatalf("the oldest answer was not the one dropped (err %v, %d queries)", err, f.count("a.test.", dns.TypeA))
	}
	clock.Advance(time.Minute)
	if _, err := r.Lookup(ctx, "b.test", dns.TypeA); err != nil {
		t.Fatal(err)
	}
	if n := size(); n != 1 {
		t.Fatalf("after MaxTTL the cache holds %d answers, want only the fresh one", n)
	}
}

// TestCNAMEChase: a CNAME left unfollowed (no target records, no SOA) is
// followed by asking for the target; the chain's smallest TTL counts.
func TestCNAMEChase(t *testing.T) {
	t.Parallel()
	f := &chainDNS{fakeDNS: newFakeDNS("mx.b.test. 300 IN A 192.0.2.7")}
	r, clock := newTest(t, f)
	a, err := r.Addrs(context.Background(), "alias.test")
	if err != nil || len(a.Addrs) != 1 || a.Addrs[0].String() != "192.0.2.7" {
		t.Fatalf("Addrs = %+v, %v", a, err)
	}
	clock.Advance(29 * time.Second)
	r.Addrs(context.Background(), "alias.test")
	if n := f.count("alias.test.", dns.TypeA); n != 1 {
		t.Fatalf("asked %d times within the CNAME's TTL", n)
	}
	clock.Advance(time.Second)
	r.Addrs(context.Background(), "alias.test")
	if n := f.count("alias.test.", dns.TypeA); n != 2 {
		t.Fatalf("asked %d times after the CNAME's TTL, want 2", n)
	}
}

// chainDNS answers alias.test with a bare CNAME, as a resolver that does
// not chase would.
type chainDNS struct{ *fakeDNS }

func (c *chainDNS) Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m, err := c.fakeDNS.Exchange(ctx, name, qtype)
	if err == nil && name == "alias.test." {
		m.Rcode, m.Ns = dns.RcodeSuccess, nil
		m.Answer = []dns.RR{&dns.CNAME{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 30}, Target: "mx.b.test."}}
	}
	return m, err
}

// TestNewRefuses: New takes complete options only.
func TestNewRefuses(t *testing.T) {
	t.Parallel()
	ok := Options{Transport: newFakeDNS(), Workers: 1, MinTTL: time.Second, MaxTTL: time.Second, MaxEntries: 1}
	tests := map[string]func(*Options){
		"no transport":    func(o *Options) { o.Transport = nil },
		"no workers":      func(o *Options) { o.Workers = 0 },
		"no entries":      func(o *Options) { o.MaxEntries = 0 },
		"no floor":        func(o *Options) { o.MinTTL = 0 },
		"ceiling < floor": func(o *Options) { o.MaxTTL = time.Millisecond },
	}
	for name, change := range tests {
		o := ok
		change(&o)
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(ok); err != nil {
		t.Fatal(err)
	}
}
