package resolver

import (
	"context"
	"errors"
	"net"
	"reflect"
	"testing"

	"github.com/miekg/dns"
)

// TestMXAnswer: RFC 5321 §5.1 and RFC 7505 read from the records.
func TestMXAnswer(t *testing.T) {
	t.Parallel()
	f := newFakeDNS(
		"multi.test. 300 IN MX 20 b.mx.test.",
		"multi.test. 300 IN MX 10 MX2.test.",
		"multi.test. 300 IN MX 10 mx1.test.",
		"multi.test. 300 IN MX 10 mx1.test.",
		"null.test. 300 IN MX 0 .",
		"nullmixed.test. 300 IN MX 0 .",
		"nullmixed.test. 300 IN MX 10 mx.nullmixed.test.",
		"noMX.test. 300 IN A 192.0.2.1",
		"alias.test. 300 IN CNAME multi.test.",
	)
	f.zone.Fail("broken.test", dns.RcodeServerFailure)
	r, _ := newTest(t, f)
	tests := []struct {
		domain  string
		want    MXAnswer
		wantErr bool
	}{
		{"multi.test", MXAnswer{Hosts: []MX{{"mx1.test", 10}, {"mx2.test", 10}, {"b.mx.test", 20}}}, false},
		{"alias.test", MXAnswer{Hosts: []MX{{"mx1.test", 10}, {"mx2.test", 10}, {"b.mx.test", 20}}}, false}, // CNAME followed
		{"null.test", MXAnswer{Null: true}, false},
		{"nullmixed.test", MXAnswer{Hosts: []MX{{"mx.nullmixed.test", 10}}}, false}, // "." among real MXs is ignored (RFC 7505 §3)
		{"nomx.test", MXAnswer{Implicit: true}, false},
		{"gone.test", MXAnswer{NXDomain: true}, false},
		{"broken.test", MXAnswer{}, true},
	}
	for _, tt := range tests {
		got, err := r.MX(context.Background(), tt.domain)
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("MX(%s) = %+v, %v; want %+v (error %v)", tt.domain, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestAddrs: A and AAAA together, IPv4 first; a family that fails does
// not hide the other's addresses, but with none a failure is an error.
func TestAddrs(t *testing.T) {
	t.Parallel()
	f := newFakeDNS(
		"both.test. 300 IN AAAA 2001:db8::1",
		"both.test. 300 IN A 192.0.2.1",
		"v6broken.test. 300 IN A 192.0.2.2",
		"nothing.test. 300 IN MX 10 mx.test.",
	)
	r, _ := newTest(t, f)
	b := &brokenAAAA{fakeDNS: f, name: "v6broken.test."}
	r2, _ := newTest(t, b)
	ctx := context.Background()
	a, err := r.Addrs(ctx, "both.test")
	if err != nil || len(a.Addrs) != 2 || a.Addrs[0].String() != "192.0.2.1" || a.Addrs[1].String() != "2001:db8::1" {
		t.Fatalf("both: %+v, %v", a, err)
	}
	if a, err := r2.Addrs(ctx, "v6broken.test"); err != nil || len(a.Addrs) != 1 {
		t.Fatalf("AAAA failing: %+v, %v; want the IPv4 address", a, err)
	}
	if a, err := r2.Addrs(ctx, "nothing.test"); err != nil || len(a.Addrs) != 0 || a.NXDomain {
		t.Fatalf("NODATA for both: %+v, %v", a, err)
	}
	b.name, b.all = "nothing.test.", true
	r3, _ := newTest(t, b)
	var e *Error
	if _, err := r3.Addrs(ctx, "nothing.test"); !errors.As(err, &e) {
		t.Fatalf("no address and a failure: %v, want *Error", err)
	}
	if a, err := r.Addrs(ctx, "gone.test"); err != nil || !a.NXDomain {
		t.Fatalf("gone: %+v, %v", a, err)
	}
}

// brokenAAAA answers SERVFAIL to AAAA for name (and to A too with all).
type brokenAAAA struct {
	*fakeDNS
	name string
	all  bool
}

func (b *brokenAAAA) Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m, err := b.fakeDNS.Exchange(ctx, name, qtype)
	if err == nil && name == b.name && (qtype == dns.TypeAAAA || b.all) {
		m.Rcode, m.Answer, m.Ns = dns.RcodeServerFailure, nil, nil
	}
	return m, err
}

// TestCompat: the *net.Resolver shape auth and go-spf read, errors as bare
// *net.DNSError values.
func TestCompat(t *testing.T) {
	t.Parallel()
	f := newFakeDNS(
		`a.test. 300 IN TXT "v=spf1 " "-all"`,
		`a.test. 300 IN TXT "other"`,
		"a.test. 300 IN MX 20 mx2.a.test.",
		"a.test. 300 IN MX 10 mx1.a.test.",
		"a.test. 300 IN A 192.0.2.1",
		"1.2.0.192.in-addr.arpa. 300 IN PTR a.test.",
	)
	f.zone.Fail("broken.test", dns.RcodeRefused)
	c, _ := newTest(t, f)
	r := c.Compat()
	ctx := context.Background()
	txt, err := r.LookupTXT(ctx, "a.test")
	if err != nil || !reflect.DeepEqual(txt, []string{"v=spf1 -all", "other"}) {
		t.Errorf("TXT = %q, %v", txt, err)
	}
	mx, err := r.LookupMX(ctx, "a.test")
	if err != nil || len(mx) != 2 || mx[0].Host != "mx1.a.test." || mx[1].Pref != 20 {
		t.Errorf("MX = %v, %v", mx, err)
	}
	ips, err := r.LookupIPAddr(ctx, "a.test")
	if err != nil || len(ips) != 1 || ips[0].IP.String() != "192.0.2.1" {
		t.Errorf("IP = %v, %v", ips, err)
	}
	names, err := r.LookupAddr(ctx, "192.0.2.1")
	if err != nil || !reflect.DeepEqual(names, []string{"a.test."}) {
		t.Errorf("PTR = %v, %v", names, err)
	}
	for what, err := range map[string]error{
		"NXDOMAIN TXT": second(r.LookupTXT(ctx, "gone.test")),
		"NODATA TXT":   second(r.LookupTXT(ctx, "mx1.a.test")),
		"NODATA MX":    second(r.LookupMX(ctx, "1.2.0.192.in-addr.arpa")),
		"NXDOMAIN IP":  second(r.LookupIPAddr(ctx, "gone.test")),
		"no PTR":       second(r.LookupAddr(ctx, "192.0.2.9")),
	} {
		if de, ok := err.(*net.DNSError); !ok || !de.IsNotFound || de.IsTemporary {
			t.Errorf("%s: %#v, want a bare not-found *net.DNSError", what, err)
		}
	}
	if de, ok := second(r.LookupTXT(ctx, "broken.test")).(*net.DNSError); !ok || !de.IsTemporary || de.IsNotFound {
		t.Errorf("REFUSED: %#v, want a bare temporary *net.DNSError", de)
	}
}

func second[T any](_ T, err error) error { return err }
