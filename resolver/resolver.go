// Package resolver answers the DNS questions of delivery and auth: MX and
// address records for next hops, TXT, MX, A/AAAA and PTR for SPF, DKIM and
// DMARC, and any other type (TLSA, for transport security) with the AD
// bit. It asks one recursive resolver (delivery.resolver, or the
// nameservers of /etc/resolv.conf) with github.com/miekg/dns, because Go's
// own resolver exposes neither record TTLs nor the AD bit.
//
// Promises:
//   - Answers are cached by their own TTLs, clamped to [MinTTL, MaxTTL].
//     NXDOMAIN and NODATA are answers too, cached for the negative TTL of
//     the SOA that comes with them (RFC 2308 §5), at most three hours; a
//     failure (SERVFAIL, REFUSED, timeout) is cached for MinTTL (RFC 2308
//     §7), so a burst of mail to a broken zone asks once, not once per
//     message.
//   - Concurrent questions for one name and type share one query
//     (singleflight).
//   - At most Workers queries are in flight; the others wait in arrival
//     order. A slow name holds one worker, never the caller of another
//     name, and a question whose answer is cached never waits.
//   - The lookups of Compat (auth, at SMTP acceptance, where a client
//     waits for the reply) are urgent: they go ahead of every other
//     waiting lookup and may use a reserve of Workers/4 more workers, so
//     a burst of delivery lookups or a slow zone never holds them up.
//   - A *Resolver is safe for concurrent use.
//
// Two ways to ask, for two kinds of caller:
//   - MX, Addrs and Lookup block until the answer is there or the context
//     ends. They are for code that already has a goroutine per task (a
//     delivery session dialling its next hop, an SMTP session checking
//     SPF). The context bounds the caller's wait, not the query: a query
//     its callers gave up on still completes and fills the cache.
//   - TryMX, TryAddrs and TryLookup never block. They are for a loop that
//     must not wait (the scheduler): they return the cached answer, or
//     ErrPending after starting the lookup; then ready is called once, on
//     a worker goroutine, when the answer is in the cache, and asking
//     again returns it. ready must not block (a non-blocking send on a
//     kick channel is the intended use) and must not call back into the
//     Resolver while holding a lock its caller holds.
//
// An error from any of them means no answer could be had: it is always
// temporary (*Error), or ErrPending. "This name does not exist" and "it
// has no record of this type" are answers (NXDomain, empty records).
package resolver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"sluice/internal/lru"
)

// Transport sends one question to the recursive resolver and returns its
// reply, whatever the rcode; an error means no server replied. *Upstream
// is the real one; tests use in-process fakes.
type Transport interface {
	Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error)
}

// Options configures New. They are complete: the defaults live in the
// config layer (OptionsFrom); New refuses what makes no sense. Only Now
// has a nil fallback.
type Options struct {
	Transport  Transport
	Workers    int           // queries in flight at once
	MinTTL     time.Duration // floor of every cached lifetime, failures included
	MaxTTL     time.Duration // ceiling of every cached lifetime
	MaxEntries int           // cache bound; the least recently stored go first
	Now        func() time.Time
}

// DefaultMaxEntries bounds the cache: not a config key, it bounds memory
// (about 300 bytes an entry, 30 MB at most), not anything a site tunes.
// 10,000 destinations need about 30,000 (MX, A and AAAA each).
const DefaultMaxEntries = 100_000

// maxNegativeTTL caps how long NXDOMAIN and NODATA are cached, whatever
// the SOA says: RFC 2308 §5 finds one to three hours to work well, and a
// domain that was just created should not wait a day for its mail.
const maxNegativeTTL = 3 * time.Hour

// maxCNAMEs bounds a CNAME chain (RFC 1034 §3.6.2 asks only that loops be
// detected; eight is what common resolvers allow and more than any sane
// zone needs).
const maxCNAMEs = 8

// ErrPending is what the Try methods return when the answer is not cached
// yet: the lookup has started, and ready will be called.
var ErrPending = errors.New("resolver: lookup pending")

// Answer is what the resolver said about one name and type.
type Answer struct {
	Name      string   // the name asked, lower case, fully qualified
	Type      uint16   // dns.TypeMX, ...
	Canonical string   // Name after the CNAME chain (Name when there is none)
	Records   []dns.RR // of Type, owned by Canonical; empty = NODATA or NXDOMAIN
	NXDomain  bool     // the (canonical) name does not exist
	// AD: the resolver validated the answer with DNSSEC (RFC 4035 §3.2.3).
	// It is only as trustworthy as the path to the resolver: Upstream
	// clears it unless that path is trusted (see UpstreamOptions.TrustAD).
	AD      bool
	Expires time.Time // when the cache forgets it
}

// Error is a lookup that got no answer: every server failed (SERVFAIL,
// REFUSED, ...), none replied in time, or the caller's context ended
// first. The name may well exist: it is always a temporary failure.
type Error struct {
	Name    string
	Type    string // "MX", "A", ...
	Rcode   int    // the reply's rcode, or -1 when there was no reply
	Timeout bool
	Err     error // the transport's error, if any
}

func (e *Error) Error() string {
	what := "no reply"
	switch {
	case e.Rcode >= 0:
		what = "server replied " + dns.RcodeToString[e.Rcode]
	case e.Timeout:
		what = "timed out"
	}
	if e.Err != nil {
		what += ": " + e.Err.Error()
	}
	return fmt.Sprintf("resolver: %s %s: %s", e.Type, strings.TrimSuffix(e.Name, "."), what)
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary is always true: a failed lookup says nothing about the name.
func (e *Error) Temporary() bool { return true }

// Resolver caches, coalesces and bounds lookups; see the package doc.
type Resolver struct {
	o      Options
	now    func() time.Time
	ctx    context.Context // the workers' queries; Close cancels it
	cancel context.CancelFunc

	mu      sync.Mutex
	cache   *lru.Map[key, entry] // in the order stored
	flights map[key]*flight      // lookups queued or in flight
	queue   []*flight            // waiting for a worker, oldest first
	urgent  []*flight            // the same for urgent lookups, served first
	running int                  // worker goroutines
	closed  bool
}

type key struct {
	name  string // lower case, fully qualified
	qtype uint16
}

type entry struct {
	ans Answer
	err error
}

// flight is one lookup, shared by everyone who asks the same question
// while it runs.
type flight struct {
	key     key
	taken   bool          // a worker runs it (it may still sit in the other queue)
	done    chan struct{} // closed once ent is set
	ent     entry
	ready   []func()
	waiters int // callers that started or joined it (for tests and stats)
}

// New checks o and returns a Resolver. Workers are started on demand and
// exit when there is nothing to do; Close stops the queries in flight.
func New(o Options) (*Resolver, error) {
	if o.Transport == nil {
		return nil, errors.New("resolver: Transport is required")
	}
	if o.Workers < 1 || o.MaxEntries < 1 {
		return nil, errors.New("resolver: Workers and MaxEntries must be positive")
	}
	if o.MinTTL <= 0 || o.MaxTTL < o.MinTTL {
		return nil, fmt.Errorf("resolver: need 0 < MinTTL (%s) <= MaxTTL (%s)", o.MinTTL, o.MaxTTL)
	}
	r := &Resolver{o: o, now: o.Now, cache: lru.New[key, entry](), flights: map[key]*flight{}}
	if r.now == nil {
		r.now = time.Now
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// Close cancels the queries in flight; their callers get an *Error. The
// Resolver answers from its cache afterwards, and fails every lookup that
// needs a query.
func (r *Resolver) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
}

func makeKey(name string, qtype uint16) key {
	return key{name: dns.Fqdn(strings.ToLower(strings.TrimSpace(name))), qtype: qtype}
}

// Lookup returns the answer for name and qtype, from the cache or from a
// query (see the package doc for the blocking rules).
func (r *Resolver) Lookup(ctx context.Context, name string, qtype uint16) (Answer, error) {
	return r.lookup(ctx, name, qtype, false)
}

func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16, urgent bool) (Answer, error) {
	ents, err := r.wait(ctx, urgent, makeKey(name, qtype))
	if err != nil {
		return Answer{}, err
	}
	return ents[0].ans, ents[0].err
}

// TryLookup returns the cached answer for name and qtype, or ErrPending
// after starting a lookup that calls ready when done.
func (r *Resolver) TryLookup(name string, qtype uint16, ready func()) (Answer, error) {
	ents, ok := r.try(ready, makeKey(name, qtype))
	if !ok {
		return Answer{}, ErrPending
	}
	return ents[0].ans, ents[0].err
}

// wait starts the lookups of keys (those not cached) and waits for all of
// them, or for ctx.
func (r *Resolver) wait(ctx context.Context, urgent bool, keys ...key) ([]entry, error) {
	ents := make([]entry, len(keys))
	flights := make([]*flight, len(keys))
	for i, k := range keys {
		flights[i], ents[i] = r.start(k, nil, urgent)
	}
	for i, f := range flights {
		if f == nil {
			continue
		}
		select {
		case <-f.done:
			ents[i] = f.ent
		case <-ctx.Done():
			k := keys[i]
			return nil, &Error{Name: k.name, Type: dns.TypeToString[k.qtype], Rcode: -1,
				Timeout: errors.Is(ctx.Err(), context.DeadlineExceeded), Err: ctx.Err()}
		}
	}
	return ents, nil
}

// try returns the entries of keys if they are all cached (or their
// lookups finished while try ran); otherwise it reports false and ready
// is called once, when the last of the lookups it started or joined ends.
func (r *Resolver) try(ready func(), keys ...key) ([]entry, bool) {
	ents := make([]entry, len(keys))
	flights := make([]*flight, len(keys))
	// left counts the lookups still running plus one for try itself, so
	// that a lookup ending while try still starts others does not call
	// ready early; the last decrement calls it.
	var left atomic.Int32
	left.Store(1)
	done := func() {
		if left.Add(-1) == 0 {
			ready()
		}
	}
	for i, k := range keys {
		left.Add(1)
		flights[i], ents[i] = r.start(k, done, false)
		if flights[i] == nil {
			left.Add(-1) // cached: nothing will call done for it
		}
	}
	if left.Add(-1) != 0 {
		return nil, false // the last lookup to end calls ready
	}
	// Every lookup ended before try did: their answers are at hand, and
	// ready is not called.
	for i, f := range flights {
		if f != nil {
			ents[i] = f.ent
		}
	}
	return ents, true
}

// start returns the cached entry of k (and a nil flight), or the flight
// that will answer it, joining a running one or queueing a new one; ready
// (if not nil) is called when that flight ends. An urgent lookup is
// queued ahead of the others (a queued one it joins moves up too), and
// may start a worker beyond Workers, up to the urgent reserve.
func (r *Resolver) start(k key, ready func(), urgent bool) (*flight, entry) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.cache.Get(k); ok {
		if now.Before(e.ans.Expires) {
			return nil, e
		}
		r.cache.Delete(k)
	}
	f := r.flights[k]
	if f == nil {
		f = &flight{key: k, done: make(chan struct{})}
		r.flights[k] = f
		if !urgent {
			r.queue = append(r.queue, f)
		}
	}
	if urgent && !f.taken {
		r.urgent = append(r.urgent, f) // if also in queue, the first worker to pop it takes it
	}
	limit := r.o.Workers
	if urgent {
		limit += r.reserve()
	}
	if !f.taken && r.running < limit {
		r.running++
		go r.work()
	}
	f.waiters++
	if ready != nil {
		f.ready = append(f.ready, ready)
	}
	return f, entry{}
}

// reserve is how many workers beyond Workers urgent lookups may start:
// a quarter more, so that an SMTP client's lookups never wait behind a
// burst of delivery lookups, nor for a slow zone to time out.
func (r *Resolver) reserve() int { return max(1, r.o.Workers/4) }

// next takes the oldest urgent flight, else (unless this worker is one
// beyond Workers, started for urgent work) the oldest other one; nil when
// there is nothing for it. r.mu is held.
func (r *Resolver) next() *flight {
	for len(r.urgent) > 0 {
		f := r.urgent[0]
		r.urgent[0] = nil
		r.urgent = r.urgent[1:]
		if !f.taken {
			return f
		}
	}
	for len(r.queue) > 0 && r.running <= r.o.Workers {
		f := r.queue[0]
		r.queue[0] = nil
		r.queue = r.queue[1:]
		if !f.taken {
			return f
		}
	}
	return nil
}

// work runs queued lookups until there are none left for it.
func (r *Resolver) work() {
	for {
		r.mu.Lock()
		f := r.next()
		if f == nil {
			r.running--
			r.mu.Unlock()
			return
		}
		f.taken = true
		closed := r.closed
		r.mu.Unlock()

		if closed {
			f.ent = entry{err: &Error{Name: f.key.name, Type: dns.TypeToString[f.key.qtype], Rcode: -1, Err: errors.New("resolver closed")}}
		} else {
			f.ent = r.query(f.key)
		}

		r.mu.Lock()
		delete(r.flights, f.key)
		if !closed {
			r.store(f.key, f.ent)
		}
		ready := f.ready
		f.ready = nil
		r.mu.Unlock()
		close(f.done)
		for _, fn := range ready {
			fn()
		}
	}
}

// store caches e; r.mu is held. Entries are stored in time order and
// none lives longer than MaxTTL, so those stored MaxTTL ago are expired
// and go first, at a cost per entry dropped; beyond MaxEntries the oldest
// go too.
func (r *Resolver) store(k key, e entry) {
	now := r.now()
	r.cache.Evict(now, r.o.MaxTTL, nil)
	for r.cache.Len() >= r.o.MaxEntries && r.cache.DropOldest() {
	}
	r.cache.Put(k, e, now)
}

// query asks the transport, following a CNAME chain the resolver left
// unfinished, and turns the reply into a cache entry.
func (r *Resolver) query(k key) entry {
	name := k.name
	var chain []dns.RR // CNAMEs of earlier replies
	ad := true         // every reply of the chain was validated
	for hop := 0; ; hop++ {
		m, err := r.o.Transport.Exchange(r.ctx, name, k.qtype)
		now := r.now()
		if err != nil {
			return r.failure(k, now, &Error{Name: k.name, Type: dns.TypeToString[k.qtype], Rcode: -1, Timeout: isTimeout(err), Err: err})
		}
		if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
			return r.failure(k, now, &Error{Name: k.name, Type: dns.TypeToString[k.qtype], Rcode: m.Rcode})
		}
		ad = ad && m.AuthenticatedData
		if len(chain) > 0 {
			m = m.Copy()
			m.Answer = append(append([]dns.RR{}, chain...), m.Answer...)
		}
		ans, ttl, chase := parse(k, m)
		if chase != "" && hop < maxCNAMEs {
			// The resolver returned a CNAME without what it points to
			// and without a SOA that would make it NODATA: ask for the
			// target ourselves (RFC 1034 §5.3.3 step 3a).
			chain = cnames(m)
			name = chase
			continue
		}
		ans.AD = ad
		ans.Expires = now.Add(r.clamp(ttl, len(ans.Records) == 0))
		return entry{ans: ans}
	}
}

// failure is a lookup without an answer, cached for MinTTL (RFC 2308 §7:
// a server failure may be cached, for at most five minutes).
func (r *Resolver) failure(k key, now time.Time, err *Error) entry {
	return entry{ans: Answer{Name: k.name, Type: k.qtype, Canonical: k.name, Expires: now.Add(r.o.MinTTL)}, err: err}
}

// clamp bounds a TTL to [MinTTL, MaxTTL], and a negative one to three
// hours at most.
func (r *Resolver) clamp(ttl time.Duration, negative bool) time.Duration {
	hi := r.o.MaxTTL
	if negative {
		hi = min(hi, maxNegativeTTL)
	}
	return max(r.o.MinTTL, min(ttl, hi))
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &t) && t.Timeout())
}
