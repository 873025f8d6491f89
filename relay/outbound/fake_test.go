package outbound

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"sluice/config"
	"sluice/internal/dnstest"
	"sluice/internal/selfsigned"
	"sluice/resolver"
)

// fakeCfg scripts an fakeMX.
type fakeCfg struct {
	greeting  string            // default "220 mx.test ESMTP fake"
	ext       []string          // EHLO keywords besides STARTTLS
	tls       *tls.Config       // offer STARTTLS with this server config
	brokenTLS bool              // offer STARTTLS, say 220, then hang up
	replies   map[string]string // exact command line, else verb -> reply ("\r\n" between lines)
	onData    func()            // runs when DATA arrives, before the 354
	// afterDot, when set, is written in a second write after the reply
	// to the final dot (a later TCP segment), or "CLOSE" closes the
	// connection then; wroteAfterDot is then closed, once.
	afterDot      string
	wroteAfterDot chan struct{}
	releaseAfter  chan struct{} // when set, afterDot waits for it to be closed
	afterQuit     chan struct{} // when set, the connection stays open after the 221 to QUIT until it is closed
}

// fakeMX is a scripted SMTP server on loopback that records what it
// is told: EHLO names, command lines, message bodies as received on the
// wire (still dot-stuffed), and the number of connections.
type fakeMX struct {
	cfg  fakeCfg
	ln   net.Listener
	addr netip.AddrPort

	mu     sync.Mutex
	ehlos  []string
	cmds   []string
	bodies []string
	conns  int
}

func newFakeMX(t testing.TB, cfg fakeCfg) *fakeMX {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeMX{cfg: cfg, ln: ln, addr: netip.MustParseAddrPort(ln.Addr().String())}
	if f.cfg.greeting == "" {
		f.cfg.greeting = "220 mx.test ESMTP fake"
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); f.serve(c) }()
		}
	}()
	return f
}

func (f *fakeMX) record(p *[]string, s string) {
	f.mu.Lock()
	*p = append(*p, s)
	f.mu.Unlock()
}

func (f *fakeMX) snapshot() (ehlos, cmds, bodies []string, conns int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ehlos...), append([]string(nil), f.cmds...), append([]string(nil), f.bodies...), f.conns
}

func (f *fakeMX) countVerb(verb string) int {
	_, cmds, _, _ := f.snapshot()
	n := 0
	for _, c := range cmds {
		if strings.HasPrefix(strings.ToUpper(c), verb) {
			n++
		}
	}
	return n
}

func (f *fakeMX) lookup(line, verb, def string) string {
	if r, ok := f.cfg.replies[line]; ok {
		return r
	}
	if r, ok := f.cfg.replies[verb]; ok {
		return r
	}
	return def
}

func (f *fakeMX) serve(c net.Conn) {
	defer func() { c.Close() }()
	_ = c.SetDeadline(time.Now().Add(time.Minute)) // a stuck test fails, not hangs
	br := bufio.NewReader(c)
	say := func(s string) bool {
		_, err := io.WriteString(c, s+"\r\n")
		return err == nil && !strings.HasPrefix(s, "421")
	}
	if !say(f.cfg.greeting) {
		return
	}
	inTLS := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		f.record(&f.cmds, line)
		switch verb {
		case "EHLO":
			f.record(&f.ehlos, arg)
			if r, ok := f.cfg.replies["EHLO"]; ok {
				if !say(r) {
					return
				}
				continue
			}
			lines := []string{"mx.test hello " + arg}
			lines = append(lines, f.cfg.ext...)
			if (f.cfg.tls != nil || f.cfg.brokenTLS) && !inTLS {
				lines = append(lines, "STARTTLS")
			}
			for i, l := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				if !say("250" + sep + l) {
					return
				}
			}
		case "HELO":
			f.record(&f.ehlos, arg)
			if !say(f.lookup(line, verb, "250 mx.test")) {
				return
			}
		case "STARTTLS":
			if f.cfg.brokenTLS {
				say("220 2.0.0 go ahead")
				return
			}
			r := f.lookup(line, verb, "220 2.0.0 go ahead")
			if !say(r) {
				return
			}
			if !strings.HasPrefix(r, "220") {
				continue
			}
			tc := tls.Server(c, f.cfg.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, br, inTLS = tc, bufio.NewReader(tc), true
		case "DATA":
			if f.cfg.onData != nil {
				f.cfg.onData()
			}
			r := f.lookup(line, verb, "354 go ahead")
			if !say(r) {
				return
			}
			if !strings.HasPrefix(r, "354") {
				continue
			}
			var body strings.Builder
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				body.WriteString(l)
			}
			f.record(&f.bodies, body.String())
			if !say(f.lookup(".", ".", "250 2.0.0 queued as FAKE")) {
				return
			}
			if f.cfg.afterDot != "" {
				if f.cfg.releaseAfter != nil {
					<-f.cfg.releaseAfter
				}
				ok := true
				if f.cfg.afterDot == "CLOSE" {
					ok = false
					c.Close() // drop the connection without a word
				} else {
					ok = say(f.cfg.afterDot)
				}
				f.mu.Lock()
				select {
				case <-f.cfg.wroteAfterDot:
				default:
					close(f.cfg.wroteAfterDot)
				}
				f.mu.Unlock()
				if !ok {
					return
				}
			}
		case "QUIT":
			say("221 2.0.0 bye")
			if f.cfg.afterQuit != nil {
				<-f.cfg.afterQuit
			}
			return
		case "AUTH":
			if !say(f.lookup(line, verb, "235 2.7.0 authenticated")) {
				return
			}
		default:
			if !say(f.lookup(line, verb, "250 2.0.0 ok")) {
				return
			}
		}
	}
}

// testCert makes a self-signed certificate for mx.test and 127.0.0.1,
// and a pool that trusts it.
func testCert(t testing.TB) (*tls.Config, *x509.CertPool) {
	t.Helper()
	c, err := selfsigned.New(time.Now(), "mx.test", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return c.Config, c.Pool
}

// fakeResolver answers from maps, through the real resolver (cache,
// pool, RFC 5321/7505 reading) over an in-process zone built on first
// use; anything unknown is NXDOMAIN, a name in mxErr answers SERVFAIL.
type fakeResolver struct {
	mx    map[string][]*net.MX
	hosts map[string][]string
	mxErr map[string]error // the value is not used: the name fails

	once sync.Once
	dns  *dnstest.InProcess
	r    *resolver.Resolver
}

func (f *fakeResolver) inner() *resolver.Resolver {
	f.once.Do(func() {
		z := dnstest.NewZone()
		for name, mxs := range f.mx {
			for _, mx := range mxs {
				z.Add(fmt.Sprintf("%s 300 IN MX %d %s", dns.Fqdn(name), mx.Pref, dns.Fqdn(mx.Host)))
			}
		}
		for name, addrs := range f.hosts {
			for _, a := range addrs {
				typ := "A"
				if strings.Contains(a, ":") {
					typ = "AAAA"
				}
				z.Add(fmt.Sprintf("%s 300 IN %s %s", dns.Fqdn(name), typ, a))
			}
		}
		for name := range f.mxErr {
			z.Fail(name, dns.RcodeServerFailure)
		}
		f.dns = dnstest.NewInProcess(z, false)
		var err error
		f.r, err = resolver.New(resolver.Options{Transport: f.dns, Workers: 8, MinTTL: time.Second, MaxTTL: time.Hour, MaxEntries: 1000})
		if err != nil {
			panic(err)
		}
	})
	return f.r
}

func (f *fakeResolver) MX(ctx context.Context, domain string) (resolver.MXAnswer, error) {
	return f.inner().MX(ctx, domain)
}

func (f *fakeResolver) Addrs(ctx context.Context, host string) (resolver.AddrAnswer, error) {
	return f.inner().Addrs(ctx, host)
}

// mxQueries is how many MX queries reached the zone.
func (f *fakeResolver) mxQueries() int {
	f.inner()
	return f.dns.Total(dns.TypeMX)
}

// fakeClock is an adjustable clock: real time plus an offset.
type fakeClock struct{ off atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// dialRecorder counts dials, records the local address asked for, and
// can redirect a destination to another (loopback) address.
type dialRecorder struct {
	mu       sync.Mutex
	dials    int
	locals   []netip.Addr
	redirect map[string]string
}

func (d *dialRecorder) Dialer(local netip.Addr) Dialer {
	return dialFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
		d.mu.Lock()
		d.dials++
		d.locals = append(d.locals, local)
		if to, ok := d.redirect[addr]; ok {
			addr = to
		}
		d.mu.Unlock()
		var nd net.Dialer
		return nd.DialContext(ctx, network, addr)
	})
}

func (d *dialRecorder) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dials
}

// lineConn reads one line per Read, a byte at a time, so that what
// follows a reply stays on the socket: the client sees it as data that
// arrived in a later segment, deterministically.
type lineConn struct{ *net.TCPConn }

func (c lineConn) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := c.TCPConn.Read(p[n : n+1])
		n += m
		if err != nil {
			return n, err
		}
		if p[n-1] == '\n' {
			break
		}
	}
	return n, nil
}

// lineDialer dials with lineConn.
func lineDialer(netip.Addr) Dialer {
	return dialFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
		var nd net.Dialer
		c, err := nd.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return lineConn{c.(*net.TCPConn)}, nil
	})
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}

const testHostname = "relay.sluice.test"

// testOptions are the daemon's outbound options from the default
// config (OptionsFrom(config.Default())) with the test hostname,
// a fake resolver, no listeners of our own and a silent log.
func testOptions() Options {
	o := OptionsFrom(config.Default())
	o.Hostname, o.Resolver, o.LocalAddrs = testHostname, &fakeResolver{}, nil
	o.Logger = slog.New(slog.DiscardHandler)
	return o
}

// testClient builds a Client whose "dest.test" routes to f, with
// TLS mode tlsMode ("" = the default delivery.tls, as the config resolves
// it) and 30-second command and data timeouts.
func testClient(t testing.TB, f *fakeMX, tlsMode string, mod func(*Options)) (*Client, *dialRecorder) {
	t.Helper()
	rec := &dialRecorder{}
	o := testOptions()
	o.Dialer, o.CommandTimeout, o.DataTimeout = rec.Dialer, 30*time.Second, 30*time.Second
	if f != nil {
		if tlsMode == "" {
			tlsMode = o.TLS
		}
		o.Routes = map[string]Route{"dest.test": {Host: f.addr.String(), TLS: tlsMode}}
	}
	if mod != nil {
		mod(&o)
	}
	ob, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return ob, rec
}
