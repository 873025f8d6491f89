package resolver

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestSingleflight: N concurrent lookups of one name, blocking or not,
// make one query, and every caller gets its answer.
func TestSingleflight(t *testing.T) {
	t.Parallel()
	f := newFakeDNS("a.test. 300 IN MX 10 mx.a.test.")
	f.hold = true
	r, _ := newTest(t, f)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			a, err := r.MX(context.Background(), "a.test")
			if err == nil && len(a.Hosts) != 1 {
				err = fmt.Errorf("answer %+v", a)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	var readies atomic.Int32
	readyAll := make(chan struct{})
	for range n {
		if _, err := r.TryMX("A.TEST.", func() {
			if readies.Add(1) == n {
				close(readyAll)
			}
		}); !errors.Is(err, ErrPending) {
			t.Fatalf("TryMX before the answer: %v, want ErrPending", err)
		}
	}
	f.waitArrived(1)
	// Every blocking caller has joined the flight before it is released:
	// then one query can only mean they shared it.
	deadline := time.Now().Add(30 * time.Second) // a bound on a failing test, not a timing
	for joined := 0; joined < 2*n; {
		r.mu.Lock()
		if f := r.flights[makeKey("a.test", dns.TypeMX)]; f != nil {
			joined = f.waiters
		}
		r.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d lookups joined the one flight", joined, 2*n)
		}
		runtime.Gosched()
	}
	f.release(1)
	wg.Wait()
	<-readyAll
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if q := f.count("a.test.", dns.TypeMX); q != 1 {
		t.Fatalf("%d queries for %d concurrent lookups, want 1", q, 2*n)
	}
	if a, err := r.TryMX("a.test", func() { t.Error("ready called for a cached answer") }); err != nil || len(a.Hosts) != 1 {
		t.Fatalf("TryMX after the answer: %+v, %v", a, err)
	}
}

// TestBoundedPool: 200 domains through 10 workers go in 20 rounds of 10
// overlapping queries (about 200/10 × the query time, were each query
// 20 ms), never more than 10 at once. Rounds are counted, not timed: the
// fake holds each query until the test releases its whole round.
func TestBoundedPool(t *testing.T) {
	t.Parallel()
	const domains, workers = 200, 10
	var records []string
	for i := range domains {
		records = append(records, fmt.Sprintf("d%d.test. 300 IN MX 10 mx.d%d.test.", i, i))
	}
	f := newFakeDNS(records...)
	f.hold = true
	r, _ := newTest(t, f, func(o *Options) { o.Workers = workers })
	var done sync.WaitGroup
	done.Add(domains)
	for i := range domains {
		if _, err := r.TryMX(fmt.Sprintf("d%d.test", i), done.Done); !errors.Is(err, ErrPending) {
			t.Fatalf("d%d: %v", i, err)
		}
	}
	rounds := 0
	for arrived := 0; arrived < domains; rounds++ {
		arrived = min(arrived+workers, domains)
		f.waitArrived(arrived)
		f.mu.Lock()
		in := f.inFlight
		f.mu.Unlock()
		if in != workers {
			t.Fatalf("round %d: %d queries in flight, want %d", rounds, in, workers)
		}
		f.release(workers)
	}
	done.Wait()
	if rounds != domains/workers || f.maxIn != workers || f.total() != domains {
		t.Fatalf("%d rounds, at most %d in flight, %d queries; want %d, %d, %d", rounds, f.maxIn, f.total(), domains/workers, workers, domains)
	}
	for i := range domains {
		if a, err := r.TryMX(fmt.Sprintf("d%d.test", i), nil); err != nil || len(a.Hosts) != 1 {
			t.Fatalf("d%d: %+v, %v", i, a, err)
		}
	}
}

// TestSlowDomainBlocksNoOther: a domain whose server never answers holds
// one worker; 199 others resolve through the rest, and a cached answer is
// returned at once even while every worker is busy.
func TestSlowDomainBlocksNoOther(t *testing.T) {
	t.Parallel()
	records := []string{"cached.test. 300 IN MX 10 mx.cached.test."}
	for i := range 199 {
		records = append(records, fmt.Sprintf("d%d.test. 300 IN MX 10 mx.d%d.test.", i, i))
	}
	f := newFakeDNS(records...)
	r, _ := newTest(t, f, func(o *Options) { o.Workers = 2 })
	if _, err := r.MX(context.Background(), "cached.test"); err != nil {
		t.Fatal(err)
	}
	f.block("slow.test.")
	f.block("slow2.test.")
	slow := make(chan error, 1)
	go func() {
		_, err := r.MX(context.Background(), "slow.test")
		slow <- err
	}()
	f.waitArrived(2)
	var wg sync.WaitGroup
	for i := range 199 {
		wg.Go(func() {
			if a, err := r.MX(context.Background(), fmt.Sprintf("d%d.test", i)); err != nil || len(a.Hosts) != 1 {
				t.Errorf("d%d: %+v, %v", i, a, err)
			}
		})
	}
	wg.Wait()
	select {
	case err := <-slow:
		t.Fatalf("the slow domain answered: %v", err)
	default:
	}
	// Both workers held by slow names: the cache still answers at once.
	go r.MX(context.Background(), "slow2.test")
	f.waitArrived(2 + 199 + 1)
	if a, err := r.TryMX("cached.test", nil); err != nil || len(a.Hosts) != 1 {
		t.Fatalf("cached answer with every worker busy: %+v, %v", a, err)
	}
	f.unblock("slow.test.")
	f.unblock("slow2.test.")
	if err := <-slow; err != nil {
		t.Fatalf("slow domain: %v", err)
	}
}

// TestCallerContext: a caller that gives up gets a temporary *Error at
// once; the query still completes and fills the cache.
func TestCallerContext(t *testing.T) {
	t.Parallel()
	f := newFakeDNS("a.test. 300 IN A 192.0.2.1")
	f.block("a.test.")
	r, _ := newTest(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		f.waitArrived(1)
		cancel()
	}()
	_, err := r.Addrs(ctx, "a.test")
	var e *Error
	if !errors.As(err, &e) || !e.Temporary() {
		t.Fatalf("err = %v, want a temporary *Error", err)
	}
	ready := make(chan struct{})
	if _, err := r.TryAddrs("a.test", func() { close(ready) }); !errors.Is(err, ErrPending) {
		t.Fatalf("TryAddrs: %v", err)
	}
	f.unblock("a.test.")
	<-ready
	if a, err := r.TryAddrs("a.test", nil); err != nil || len(a.Addrs) != 1 {
		t.Fatalf("after the query ended: %+v, %v", a, err)
	}
	if n := f.count("a.test.", dns.TypeA); n != 1 {
		t.Fatalf("%d queries, want 1", n)
	}
}

// TestClose: lookups in flight and queued fail once the resolver closes.
func TestClose(t *testing.T) {
	t.Parallel()
	f := newFakeDNS("a.test. 300 IN A 192.0.2.1")
	f.block("a.test.")
	r, _ := newTest(t, f, func(o *Options) { o.Workers = 1 })
	errs := make(chan error, 2)
	go func() { _, err := r.Lookup(context.Background(), "a.test", dns.TypeA); errs <- err }()
	f.waitArrived(1)
	go func() { _, err := r.Lookup(context.Background(), "b.test", dns.TypeA); errs <- err }()
	for queued := 0; queued == 0; {
		r.mu.Lock()
		queued = len(r.queue)
		r.mu.Unlock()
		runtime.Gosched()
	}
	r.Close()
	for range 2 {
		if err := <-errs; err == nil {
			t.Fatal("a lookup succeeded after Close")
		}
	}
}

// TestUrgentGoesFirst: the lookups of Compat (auth, with an SMTP client
// waiting) go ahead of every queued delivery lookup, one already queued
// that they join moves up with them, and they may use a reserve worker
// when every regular one is held by a slow zone.
func TestUrgentGoesFirst(t *testing.T) {
	t.Parallel()
	records := []string{`u.test. 300 IN TXT "v=spf1 -all"`}
	for i := range 10 {
		records = append(records, fmt.Sprintf("b%d.test. 300 IN MX 10 mx.b%d.test.", i, i))
	}
	f := newFakeDNS(records...)
	r, _ := newTest(t, f, func(o *Options) { o.Workers = 4 }) // reserve: 1
	ctx := context.Background()
	for i := range 5 {
		f.block(fmt.Sprintf("slow%d.test.", i))
	}
	for i := range 4 {
		go r.MX(ctx, fmt.Sprintf("slow%d.test", i))
	}
	f.waitArrived(4)
	// Every regular worker is held: an urgent lookup still goes, on the
	// reserve worker.
	if txt, err := r.Compat().LookupTXT(ctx, "u.test"); err != nil || len(txt) != 1 {
		t.Fatalf("urgent lookup with every worker held: %v, %v", txt, err)
	}
	// Hold the reserve worker too, queue ten delivery lookups, then two
	// urgent ones: a new name and one of the queued names.
	go r.Compat().LookupTXT(ctx, "slow4.test")
	f.waitArrived(6)
	var done sync.WaitGroup
	done.Add(10)
	for i := range 10 {
		if _, err := r.TryMX(fmt.Sprintf("b%d.test", i), done.Done); !errors.Is(err, ErrPending) {
			t.Fatalf("b%d: %v", i, err)
		}
	}
	urgent := make(chan error, 2)
	go func() { _, err := r.Compat().LookupTXT(ctx, "u2.test"); urgent <- err }()
	go func() { _, err := r.Compat().LookupMX(ctx, "b7.test"); urgent <- err }()
	for queued := 0; queued < 2; {
		r.mu.Lock()
		queued = len(r.urgent)
		r.mu.Unlock()
		runtime.Gosched()
	}
	f.unblock("slow0.test.")
	for range 2 {
		<-urgent // u2.test is NXDOMAIN (a not-found error), b7 answers
	}
	f.mu.Lock()
	next := append([]string(nil), f.order[6:8]...)
	f.mu.Unlock()
	slices.Sort(next) // the two urgent lookups raced each other to the queue
	if next[0] != "b7.test. MX" || next[1] != "u2.test. TXT" {
		t.Fatalf("after the first worker freed up: %q; want the urgent lookups first", next)
	}
	for i := 1; i < 5; i++ {
		f.unblock(fmt.Sprintf("slow%d.test.", i))
	}
	done.Wait()
	if f.maxIn > 5 {
		t.Fatalf("%d queries at once, want at most 4 workers + 1 reserve", f.maxIn)
	}
}
