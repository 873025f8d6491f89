package resolver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// ResolvConf is where the system names its resolvers.
const ResolvConf = "/etc/resolv.conf"

// udpSize is the EDNS0 buffer we advertise: 1232 bytes fits the IPv6
// minimum MTU without fragmentation (DNS flag day 2020); larger answers
// come truncated and are asked again over TCP.
const udpSize = 1232

// UpstreamOptions names the recursive resolvers to ask.
type UpstreamOptions struct {
	Servers  []string      // "ip:port", asked in order
	Timeout  time.Duration // per try (over UDP, and over TCP after a truncated reply)
	Attempts int           // rounds over the servers
	// TrustAD passes the AD bit through. It is only as good as the path
	// to the resolver (RFC 6698 §A.3.3, RFC 4035 §4.9.3): set for a
	// resolver on loopback, for the one delivery.resolver names (the
	// operator chose it), and for resolv.conf with "options trust-ad"
	// (as glibc does); otherwise AD is always false.
	TrustAD bool
}

// Upstream is the real Transport: UDP with a TCP retry on truncation
// (RFC 7766 §5), EDNS0 with the DO bit (RFC 3225) and the AD bit set in
// the query (RFC 6840 §5.7), so a validating resolver says whether it
// validated the answer. Names are absolute: no search list applies to
// mail domains.
type Upstream struct {
	o        UpstreamOptions
	udp, tcp *dns.Client
}

// NewUpstream checks o and returns the transport.
func NewUpstream(o UpstreamOptions) (*Upstream, error) {
	if len(o.Servers) == 0 {
		return nil, errors.New("resolver: no DNS server")
	}
	for _, s := range o.Servers {
		if _, err := netip.ParseAddrPort(s); err != nil {
			return nil, fmt.Errorf("resolver: DNS server %q: want ip:port", s)
		}
	}
	if o.Timeout <= 0 || o.Attempts < 1 {
		return nil, errors.New("resolver: Timeout and Attempts must be positive")
	}
	return &Upstream{
		o:   o,
		udp: &dns.Client{Net: "udp", UDPSize: udpSize, Timeout: o.Timeout},
		tcp: &dns.Client{Net: "tcp", Timeout: o.Timeout},
	}, nil
}

// Exchange asks the servers in order, Attempts rounds, until one replies
// with NOERROR or NXDOMAIN. Failing that it returns the last reply (a
// SERVFAIL, say), or the last error when no server replied at all.
func (u *Upstream) Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	var last *dns.Msg
	var lastErr error
	for range u.o.Attempts {
		for _, s := range u.o.Servers {
			m, err := u.try(ctx, s, name, qtype)
			switch {
			case err != nil:
				lastErr = err
			case m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError:
				return m, nil
			default:
				last = m
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
	}
	if last != nil {
		return last, nil
	}
	return nil, lastErr
}

func (u *Upstream) try(ctx context.Context, server, name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype) // a fresh random ID per try
	q.RecursionDesired = true
	q.AuthenticatedData = true
	q.SetEdns0(udpSize, true)
	m, err := u.exchange(ctx, u.udp, q, server)
	if err == nil && m.Truncated {
		m, err = u.exchange(ctx, u.tcp, q, server)
	}
	if err == nil && m.Rcode == dns.RcodeFormatError {
		// A server that does not speak EDNS0 answers FORMERR: ask it
		// again without (RFC 6891 §7).
		q.Extra = nil
		q.Id = dns.Id()
		m, err = u.exchange(ctx, u.udp, q, server)
		if err == nil && m.Truncated {
			m, err = u.exchange(ctx, u.tcp, q, server)
		}
	}
	if err != nil {
		return nil, err
	}
	if !u.o.TrustAD {
		m.AuthenticatedData = false
	}
	return m, nil
}

// exchange sends q and checks that the reply answers it: miekg/dns checks
// the ID, we check the question too (RFC 5452 §9.1).
func (u *Upstream) exchange(ctx context.Context, c *dns.Client, q *dns.Msg, server string) (*dns.Msg, error) {
	tctx, cancel := context.WithTimeout(ctx, u.o.Timeout)
	defer cancel()
	m, _, err := c.ExchangeContext(tctx, q, server)
	if err != nil {
		return nil, err
	}
	if len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, q.Question[0].Name) ||
		m.Question[0].Qtype != q.Question[0].Qtype {
		return nil, fmt.Errorf("reply from %s does not match the question", server)
	}
	return m, nil
}

// UpstreamFromResolvConf reads the nameservers, timeout and attempts of a
// resolv.conf(5) file. A nameserver that is not an IP address is skipped,
// as the C library does. Without the file, or without a usable nameserver
// in it, the servers are 127.0.0.1:53 and [::1]:53, as for the C library
// and Go's resolver. The search list and ndots do not apply: mail domains are
// absolute.
func UpstreamFromResolvConf(path string) (UpstreamOptions, error) {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return UpstreamOptions{}, fmt.Errorf("resolver: %w", err)
	}
	cc, err := dns.ClientConfigFromReader(bytes.NewReader(b))
	if err != nil {
		return UpstreamOptions{}, fmt.Errorf("resolver: %s: %w", path, err)
	}
	o := UpstreamOptions{Timeout: time.Duration(cc.Timeout) * time.Second, Attempts: cc.Attempts, TrustAD: true}
	for _, s := range cc.Servers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue // not an address: the C library skips it too
		}
		o.Servers = append(o.Servers, net.JoinHostPort(a.String(), cc.Port))
		o.TrustAD = o.TrustAD && a.IsLoopback()
	}
	if len(o.Servers) == 0 {
		o.Servers = []string{"127.0.0.1:53", "[::1]:53"}
	}
	if hasOption(b, "trust-ad") {
		o.TrustAD = true
	}
	return o, nil
}

// hasOption reports whether resolv.conf text has opt on an options line.
func hasOption(b []byte, opt string) bool {
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "options" {
			for _, o := range f[1:] {
				if o == opt {
					return true
				}
			}
		}
	}
	return false
}
