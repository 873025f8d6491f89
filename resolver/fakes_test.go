package resolver

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"sluice/internal/dnstest"
	"sluice/internal/fakeclock"
)

// fakeDNS is an in-process Transport answering from a dnstest.Zone. With
// hold set, every query waits until the test releases it (release), so
// tests see exactly which queries overlap without timing anything.
type fakeDNS struct {
	zone *dnstest.Zone
	hold bool

	mu       sync.Mutex
	cond     *sync.Cond
	queries  map[string]int // "name TYPE"
	order    []string       // "name TYPE" in order of arrival
	arrived  int
	inFlight int
	maxIn    int
	released int // queries allowed to answer
	blocked  map[string]bool
	noReply  bool // fail every query as a network error would
}

func newFakeDNS(records ...string) *fakeDNS {
	f := &fakeDNS{zone: dnstest.NewZone(records...), queries: map[string]int{}, blocked: map[string]bool{}}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *fakeDNS) Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	f.mu.Lock()
	f.queries[name+" "+dns.TypeToString[qtype]]++
	f.order = append(f.order, name+" "+dns.TypeToString[qtype])
	f.arrived++
	f.inFlight++
	f.maxIn = max(f.maxIn, f.inFlight)
	f.cond.Broadcast()
	stop := context.AfterFunc(ctx, func() {
		f.mu.Lock()
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	defer stop()
	for ctx.Err() == nil && (f.blocked[name] || (f.hold && f.released == 0)) {
		f.cond.Wait()
	}
	if f.hold && !f.blocked[name] && ctx.Err() == nil {
		f.released--
	}
	f.inFlight--
	noReply := f.noReply
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if noReply {
		return nil, &timeoutErr{}
	}
	res := f.zone.Answer(name, qtype)
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Response, m.RecursionAvailable = true, true
	m.Rcode, m.Answer, m.Ns = res.Rcode, res.Answer, res.Ns
	return m, nil
}

type timeoutErr struct{}

func (*timeoutErr) Error() string { return "i/o timeout" }
func (*timeoutErr) Timeout() bool { return true }

// count is how many queries for name (fully qualified) and qtype arrived.
func (f *fakeDNS) count(name string, qtype uint16) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queries[dns.Fqdn(name)+" "+dns.TypeToString[qtype]]
}

func (f *fakeDNS) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.arrived
}

// waitArrived blocks until n queries have arrived in all.
func (f *fakeDNS) waitArrived(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.arrived < n {
		f.cond.Wait()
	}
}

// release lets n held queries answer.
func (f *fakeDNS) release(n int) {
	f.mu.Lock()
	f.released += n
	f.cond.Broadcast()
	f.mu.Unlock()
}

// block holds every query for name (fully qualified) until unblock.
func (f *fakeDNS) block(name string) {
	f.mu.Lock()
	f.blocked[name] = true
	f.mu.Unlock()
}

func (f *fakeDNS) unblock(name string) {
	f.mu.Lock()
	delete(f.blocked, name)
	f.cond.Broadcast()
	f.mu.Unlock()
}

// newTest returns a resolver over f with a fake clock: 5 s floor, 1 day
// ceiling, 4 workers unless changed.
func newTest(t *testing.T, f Transport, change ...func(*Options)) (*Resolver, *fakeclock.Clock) {
	t.Helper()
	clock := fakeclock.New()
	o := Options{Transport: f, Workers: 4, MinTTL: 5 * time.Second, MaxTTL: 24 * time.Hour, MaxEntries: DefaultMaxEntries, Now: clock.Now}
	for _, c := range change {
		c(&o)
	}
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, clock
}
