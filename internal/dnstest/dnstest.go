// Package dnstest is a real DNS server on 127.0.0.1 for tests and benches:
// UDP and TCP on one port, answering from a zone table (Zone) or from
// names generated under a suffix (Suffix), with an optional delay per
// query and counters (queries per name and type, per transport, and the
// most ever in flight at once). It speaks as a recursive resolver would:
// CNAME chains are followed within the table, NXDOMAIN and NODATA come
// with a SOA for negative caching (RFC 2308), and UDP replies are cut to
// the client's EDNS0 size with TC set (or always, to force TCP).
//
// A Server is safe for concurrent use; its settings may change while it
// serves.
package dnstest

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Result is the answer to one question.
type Result struct {
	Rcode  int      // dns.RcodeSuccess, dns.RcodeNameError, dns.RcodeServerFailure, ...
	Answer []dns.RR // the CNAME chain and the records
	Ns     []dns.RR // the SOA of a negative answer
}

// Answerer answers questions. Zone and Suffix are the two kinds.
type Answerer interface {
	Answer(name string, qtype uint16) Result
}

// Options configures Start.
type Options struct {
	Answerer Answerer
	Addr     string        // "127.0.0.1:0" when empty: UDP and TCP share the port
	Delay    time.Duration // before each reply
	// TruncateUDP answers every UDP query with an empty, truncated reply,
	// so a client has to ask again over TCP.
	TruncateUDP bool
	// AD sets the AD bit on replies to queries with the DO or AD bit, as
	// a validating resolver does for a signed zone.
	AD bool
}

// Server is a running DNS server.
type Server struct {
	udp, tcp *dns.Server
	addr     string
	answerer Answerer

	delay       atomic.Int64 // time.Duration
	truncateUDP atomic.Bool
	ad          atomic.Bool

	mu          sync.Mutex
	counts      map[string]int // "name TYPE" (name lower case, no final dot)
	total       int
	viaUDP      int
	viaTCP      int
	inFlight    int
	maxInFlight int
	lastDO      bool
}

// Start listens and serves until Close.
func Start(o Options) (*Server, error) {
	if o.Answerer == nil {
		return nil, errors.New("dnstest: no Answerer")
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	pc, ln, err := listenBoth(o.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{addr: pc.LocalAddr().String(), answerer: o.Answerer, counts: map[string]int{}}
	s.SetDelay(o.Delay)
	s.truncateUDP.Store(o.TruncateUDP)
	s.ad.Store(o.AD)
	s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)}
	s.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serve)}
	started := make(chan struct{}, 2)
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		srv.NotifyStartedFunc = func() { started <- struct{}{} }
		go func() { _ = srv.ActivateAndServe() }()
	}
	<-started
	<-started
	return s, nil
}

// listenBoth binds UDP, then TCP on the same port; with port 0 it tries
// again when the TCP port is taken.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	for try := 0; ; try++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		_, p, _ := net.SplitHostPort(pc.LocalAddr().String())
		ln, err := net.Listen("tcp", net.JoinHostPort(host, p))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || try == 20 {
			return nil, nil, err
		}
	}
}

// Addr is "127.0.0.1:port", for UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// Close stops the server.
func (s *Server) Close() {
	_ = s.udp.Shutdown()
	_ = s.tcp.Shutdown()
}

// SetDelay changes the delay before each reply.
func (s *Server) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// SetTruncateUDP turns forced truncation of UDP replies on or off.
func (s *Server) SetTruncateUDP(on bool) { s.truncateUDP.Store(on) }

// SetAD turns the AD bit of replies on or off.
func (s *Server) SetAD(on bool) { s.ad.Store(on) }

// Count is how many queries for name and qtype arrived (over either
// transport).
func (s *Server) Count(name string, qtype uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[countKey(name, qtype)]
}

// Stats are the server's counters.
type Stats struct {
	Queries     int  // all queries
	UDP, TCP    int  // by transport
	MaxInFlight int  // the most queries ever being answered at once
	LastDO      bool // the last query had EDNS0 with the DO bit
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Queries: s.total, UDP: s.viaUDP, TCP: s.viaTCP, MaxInFlight: s.maxInFlight, LastDO: s.lastDO}
}

func countKey(name string, qtype uint16) string {
	return strings.TrimSuffix(strings.ToLower(name), ".") + " " + dns.TypeToString[qtype]
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	_, isUDP := w.RemoteAddr().(*net.UDPAddr)
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	opt := req.IsEdns0()
	s.mu.Lock()
	s.counts[countKey(q.Name, q.Qtype)]++
	s.total++
	if isUDP {
		s.viaUDP++
	} else {
		s.viaTCP++
	}
	s.lastDO = opt != nil && opt.Do()
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()

	if d := time.Duration(s.delay.Load()); d > 0 {
		time.Sleep(d) // the server's latency, not a test waiting
	}
	res := s.answerer.Answer(q.Name, q.Qtype)
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	m.Rcode = res.Rcode
	m.Answer = res.Answer
	m.Ns = res.Ns
	if s.ad.Load() && (req.AuthenticatedData || (opt != nil && opt.Do())) {
		m.AuthenticatedData = true
	}
	size := dns.MinMsgSize
	if opt != nil {
		m.SetEdns0(opt.UDPSize(), opt.Do())
		size = max(size, int(opt.UDPSize()))
	}
	if isUDP {
		if s.truncateUDP.Load() {
			m.Answer, m.Ns = nil, nil
			m.Truncated = true
		} else {
			m.Truncate(size) // RFC 6891 §7: what does not fit is cut, with TC
		}
	}
	_ = w.WriteMsg(m)
}

// RR parses one record in zone-file syntax; it panics on a typo (tests
// and fixed tables only).
func RR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil || rr == nil {
		panic(fmt.Sprintf("dnstest: record %q: %v", s, err))
	}
	return rr
}
