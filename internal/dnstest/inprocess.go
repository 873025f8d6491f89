package dnstest

import (
	"context"
	"sync"

	"github.com/miekg/dns"
)

// InProcess answers as a Server would, without the network: it is a
// resolver.Transport for the unit tests of the resolver's users, so they
// run the real cache and pool over a table. It counts queries per name
// and type. Safe for concurrent use.
type InProcess struct {
	answerer Answerer
	ad       bool

	mu     sync.Mutex
	counts map[string]int
}

// NewInProcess answers from a; with ad, every reply has the AD bit.
func NewInProcess(a Answerer, ad bool) *InProcess {
	return &InProcess{answerer: a, ad: ad, counts: map[string]int{}}
}

// Exchange answers one question.
func (p *InProcess) Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.counts[countKey(name, qtype)]++
	p.mu.Unlock()
	res := p.answerer.Answer(name, qtype)
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.Response, m.RecursionAvailable, m.AuthenticatedData = true, true, p.ad
	m.Rcode, m.Answer, m.Ns = res.Rcode, res.Answer, res.Ns
	return m, nil
}

// Count is how many queries for name and qtype were asked.
func (p *InProcess) Count(name string, qtype uint16) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[countKey(name, qtype)]
}

// Total is how many queries of qtype were asked, all names together.
func (p *InProcess) Total(qtype uint16) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	suffix := " " + dns.TypeToString[qtype]
	for k, c := range p.counts {
		if len(k) > len(suffix) && k[len(k)-len(suffix):] == suffix {
			n += c
		}
	}
	return n
}
