package auth

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"sluice/config"
)

// fakeDNS is an in-memory Resolver. Names are compared lower-case without a
// trailing dot. A name in temp answers a temporary error; a name in hang
// blocks until the context ends, as an unreachable resolver does.
type fakeDNS struct {
	mu    sync.Mutex
	txt   map[string][]string
	ip    map[string][]string
	mx    map[string][]*net.MX
	ptr   map[string][]string // keyed by IP address text
	cname map[string]string
	temp  map[string]bool
	hang  map[string]bool
	calls atomic.Int64
}

func newFakeDNS() *fakeDNS {
	return &fakeDNS{txt: map[string][]string{}, ip: map[string][]string{}, mx: map[string][]*net.MX{},
		ptr: map[string][]string{}, cname: map[string]string{}, temp: map[string]bool{}, hang: map[string]bool{}}
}

func fkey(n string) string { return strings.TrimSuffix(strings.ToLower(n), ".") }

func (f *fakeDNS) exists(n string) bool {
	_, a := f.txt[n]
	_, b := f.ip[n]
	_, c := f.mx[n]
	_, d := f.cname[n]
	return a || b || c || d || f.temp[n]
}

// resolve follows CNAMEs and reports how the name fares.
func (f *fakeDNS) resolve(ctx context.Context, name string) (string, error) {
	f.calls.Add(1)
	n := fkey(name)
	for i := 0; i < 8; i++ {
		if f.hang[n] {
			<-ctx.Done()
			return "", &net.DNSError{Err: "i/o timeout", Name: name, IsTimeout: true, IsTemporary: true}
		}
		if f.temp[n] {
			return "", &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
		}
		c, ok := f.cname[n]
		if !ok {
			break
		}
		n = fkey(c)
	}
	if !f.exists(n) {
		return "", &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return n, nil
}

func nodata(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (f *fakeDNS) LookupTXT(ctx context.Context, name string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(f.txt[n]) == 0 {
		return nil, nodata(name)
	}
	return append([]string(nil), f.txt[n]...), nil
}

func (f *fakeDNS) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	var out []net.IPAddr
	for _, s := range f.ip[n] {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, net.IPAddr{IP: net.IP(a.AsSlice())})
		}
	}
	if len(out) == 0 {
		return nil, nodata(host)
	}
	return out, nil
}

func (f *fakeDNS) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(f.mx[n]) == 0 {
		return nil, nodata(name)
	}
	return f.mx[n], nil
}

func (f *fakeDNS) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls.Add(1)
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: "unrecognized address", Name: addr}
	}
	key := a.Unmap().String()
	if f.hang[key] {
		<-ctx.Done()
		return nil, &net.DNSError{Err: "i/o timeout", Name: addr, IsTimeout: true, IsTemporary: true}
	}
	if f.temp[key] {
		return nil, &net.DNSError{Err: "server misbehaving", Name: addr, IsTemporary: true}
	}
	names, ok := f.ptr[key]
	if !ok {
		return nil, nodata(addr)
	}
	return names, nil
}

// testOptions are the daemon's options from the default config
// (OptionsFrom(config.Default())) with the tweaks: New fills in nothing but
// the seams, so a test states every value it changes.
func testOptions(tweaks ...func(*Options)) Options {
	o := OptionsFrom(config.Default())
	for _, f := range tweaks {
		f(&o)
	}
	return o
}
