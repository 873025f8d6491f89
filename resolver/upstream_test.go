package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"sluice/internal/dnstest"
)

// startDNS starts a dnstest server over zone.
func startDNS(t *testing.T, zone *dnstest.Zone, change ...func(*dnstest.Options)) *dnstest.Server {
	t.Helper()
	o := dnstest.Options{Answerer: zone}
	for _, c := range change {
		c(&o)
	}
	s, err := dnstest.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func upstream(t *testing.T, trustAD bool, servers ...string) *Upstream {
	t.Helper()
	u, err := NewUpstream(UpstreamOptions{Servers: servers, Timeout: 5 * time.Second, Attempts: 1, TrustAD: trustAD})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestTruncationFallsBackToTCP: a truncated UDP reply is asked again over
// TCP (RFC 7766 §5), whether the server truncates everything or the
// answer does not fit the 1232 bytes we advertise.
func TestTruncationFallsBackToTCP(t *testing.T) {
	t.Parallel()
	var big []string
	for i := range 20 {
		big = append(big, fmt.Sprintf(`big.test. 300 IN TXT "%s%02d"`, strings.Repeat("x", 200), i))
	}
	zone := dnstest.NewZone(append(big, "a.test. 300 IN MX 10 mx.a.test.")...)
	t.Run("forced", func(t *testing.T) {
		t.Parallel()
		s := startDNS(t, zone, func(o *dnstest.Options) { o.TruncateUDP = true })
		r, _ := newTest(t, upstream(t, true, s.Addr()))
		a, err := r.MX(context.Background(), "a.test")
		if err != nil || len(a.Hosts) != 1 {
			t.Fatalf("MX = %+v, %v", a, err)
		}
		if st := s.Stats(); st.UDP != 1 || st.TCP != 1 {
			t.Fatalf("%d UDP and %d TCP queries, want 1 each", st.UDP, st.TCP)
		}
	})
	t.Run("too big for UDP", func(t *testing.T) {
		t.Parallel()
		s := startDNS(t, zone)
		r, _ := newTest(t, upstream(t, true, s.Addr()))
		txt, err := r.Compat().LookupTXT(context.Background(), "big.test")
		if err != nil || len(txt) != 20 {
			t.Fatalf("TXT: %d records, %v; want 20", len(txt), err)
		}
		if st := s.Stats(); st.UDP != 1 || st.TCP != 1 {
			t.Fatalf("%d UDP and %d TCP queries, want 1 each", st.UDP, st.TCP)
		}
	})
}

// TestADBitPassedThrough: queries carry EDNS0 with DO; the AD bit of the
// reply reaches every answer type when the path is trusted, and never
// when it is not.
func TestADBitPassedThrough(t *testing.T) {
	t.Parallel()
	zone := dnstest.NewZone("a.test. 300 IN MX 10 mx.a.test.", "mx.a.test. 300 IN A 192.0.2.1", "mx.a.test. 300 IN AAAA 2001:db8::1",
		"_25._tcp.mx.a.test. 300 IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	for _, tt := range []struct {
		name            string
		serverAD, trust bool
		want            bool
	}{
		{"validated, trusted path", true, true, true},
		{"validated, untrusted path", true, false, false},
		{"not validated", false, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startDNS(t, zone, func(o *dnstest.Options) { o.AD = tt.serverAD })
			r, _ := newTest(t, upstream(t, tt.trust, s.Addr()))
			ctx := context.Background()
			mx, err := r.MX(ctx, "a.test")
			if err != nil || mx.AD != tt.want {
				t.Fatalf("MX AD = %v (%v), want %v", mx.AD, err, tt.want)
			}
			if !s.Stats().LastDO {
				t.Fatal("the query did not set DO")
			}
			addrs, err := r.Addrs(ctx, "mx.a.test")
			if err != nil || addrs.AD != tt.want || len(addrs.Addrs) != 2 {
				t.Fatalf("Addrs = %+v (%v), want AD %v and 2 addresses", addrs, err, tt.want)
			}
			tlsa, err := r.Lookup(ctx, "_25._tcp.mx.a.test", dns.TypeTLSA)
			if err != nil || tlsa.AD != tt.want || len(tlsa.Records) != 1 {
				t.Fatalf("TLSA = %+v (%v), want AD %v", tlsa, err, tt.want)
			}
		})
	}
}

// TestUpstreamFailover: a server that fails (SERVFAIL) or does not
// answer gives way to the next; when all fail the lookup is a temporary
// *Error carrying the rcode.
func TestUpstreamFailover(t *testing.T) {
	t.Parallel()
	broken := dnstest.NewZone()
	broken.Fail("a.test", dns.RcodeServerFailure)
	bad := startDNS(t, broken)
	good := startDNS(t, dnstest.NewZone("a.test. 300 IN A 192.0.2.1"))
	// A UDP port nobody reads: the query times out.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	deaf := pc.LocalAddr().String()

	u, err := NewUpstream(UpstreamOptions{Servers: []string{deaf, bad.Addr(), good.Addr()}, Timeout: 100 * time.Millisecond, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := u.Exchange(context.Background(), "a.test", dns.TypeA)
	if err != nil || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("Exchange = %v, %v", m, err)
	}
	r, _ := newTest(t, upstream(t, false, bad.Addr()))
	_, err = r.Lookup(context.Background(), "a.test", dns.TypeA)
	var e *Error
	if !errors.As(err, &e) || e.Rcode != dns.RcodeServerFailure || !strings.Contains(err.Error(), "SERVFAIL") {
		t.Fatalf("err = %v, want *Error with SERVFAIL", err)
	}
}

// TestResolvConf: nameservers, port, timeout and attempts come from
// resolv.conf; search and ndots do not apply; AD is trusted from
// loopback servers or with "options trust-ad".
func TestResolvConf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text string
		want       UpstreamOptions
		wantErr    bool
	}{
		{"typical", "# generated\nsearch example.com\nnameserver 192.0.2.53\nnameserver 2001:db8::53\noptions ndots:2 timeout:1 attempts:3 rotate\n",
			UpstreamOptions{Servers: []string{"192.0.2.53:53", "[2001:db8::53]:53"}, Timeout: time.Second, Attempts: 3}, false},
		{"defaults", "nameserver 192.0.2.53\n", UpstreamOptions{Servers: []string{"192.0.2.53:53"}, Timeout: 5 * time.Second, Attempts: 2}, false},
		{"local stub", "nameserver 127.0.0.53\noptions edns0 trust-ad\n", UpstreamOptions{Servers: []string{"127.0.0.53:53"}, Timeout: 5 * time.Second, Attempts: 2, TrustAD: true}, false},
		{"loopback only", "nameserver 127.0.0.1\nnameserver ::1\n", UpstreamOptions{Servers: []string{"127.0.0.1:53", "[::1]:53"}, Timeout: 5 * time.Second, Attempts: 2, TrustAD: true}, false},
		{"trust-ad", "nameserver 192.0.2.53\noptions trust-ad\n", UpstreamOptions{Servers: []string{"192.0.2.53:53"}, Timeout: 5 * time.Second, Attempts: 2, TrustAD: true}, false},
		{"no nameserver", "search example.com\n", UpstreamOptions{Servers: []string{"127.0.0.1:53", "[::1]:53"}, Timeout: 5 * time.Second, Attempts: 2, TrustAD: true}, false},
		{"a name is skipped", "nameserver dns.example.com\nnameserver 192.0.2.53\n", UpstreamOptions{Servers: []string{"192.0.2.53:53"}, Timeout: 5 * time.Second, Attempts: 2}, false},
		{"only a name", "nameserver dns.example.com\n", UpstreamOptions{Servers: []string{"127.0.0.1:53", "[::1]:53"}, Timeout: 5 * time.Second, Attempts: 2, TrustAD: true}, false},
		{"unreadable", "", UpstreamOptions{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "resolv.conf")
			if err := os.WriteFile(p, []byte(tt.text), 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.wantErr {
				p = t.TempDir() // a directory: read fails with something other than "does not exist"
			}
			got, err := UpstreamFromResolvConf(p)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	got, err := UpstreamFromResolvConf(filepath.Join(t.TempDir(), "missing"))
	if err != nil || !reflect.DeepEqual(got.Servers, []string{"127.0.0.1:53", "[::1]:53"}) {
		t.Fatalf("without the file: %+v, %v", got, err)
	}
}
