package mtasts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"sluice/relay/outbound"
	"sluice/resolver"
)

// Resolver is the part of *resolver.Resolver the cache uses (the
// daemon's resolver: one DNS cache for delivery, auth, DANE and MTA-STS).
type Resolver interface {
	Lookup(ctx context.Context, name string, qtype uint16) (resolver.Answer, error)
}

// Store keeps policies across restarts: the queue file's "mtasts"
// bucket (queue.Queue satisfies it). Values are opaque to the store.
type Store interface {
	LoadSTSPolicy(domain string) ([]byte, error)
	SaveSTSPolicy(domain string, v []byte) error
	DeleteSTSPolicy(domain string) error
}

// RetryFetch is how long a domain whose policy could not be fetched is
// not asked again: a policy server that is down must not cost every
// delivery a FetchTimeout.
const RetryFetch = 5 * time.Minute

// Options configures New.
type Options struct {
	Resolver Resolver     // required
	HTTP     *http.Client // default NewHTTPClient(nil, nil, FetchTimeout)
	Store    Store        // nil = memory only
	Now      func() time.Time
	Logger   *slog.Logger
	// Results, when set, counts each failed policy fetch for TLS-RPT
	// (RFC 8460 §4.3.2.2): policy type "sts", result
	// sts-policy-fetch-error, sts-policy-invalid or sts-webpki-invalid.
	Results *outbound.TLSResults
}

// Cache finds the MTA-STS policy in force for a domain (RFC 8461 §3,
// §5.1): the TXT record's id says whether the cached policy is current;
// a new id, or none cached, fetches; a policy is kept for its max_age
// and refreshed when less than a quarter of it is left; a fetch that
// fails keeps the cached policy in force until it expires. Safe for
// concurrent use; concurrent misses for one domain share one fetch.
type Cache struct {
	o   Options
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	mem      map[string]*entry     // domain -> the policy in force (loaded from Store on first use)
	failed   map[string]time.Time  // domain -> no fetch before this
	inflight map[string]*fetchCall // one fetch per domain at a time
}

type fetchCall struct {
	done chan struct{}
	e    *entry
	err  error
}

// entry is one cached policy, as stored (JSON, a few hundred bytes).
type entry struct {
	V       int       `json:"v"`
	ID      string    `json:"id"`
	Mode    Mode      `json:"mode"`
	MX      []string  `json:"mx,omitempty"`
	MaxAge  int64     `json:"max_age"` // seconds
	Fetched time.Time `json:"fetched"`
}

func (e *entry) expires() time.Time { return e.Fetched.Add(time.Duration(e.MaxAge) * time.Second) }

// refreshAt: a quarter of max_age before expiry (RFC 8461 §3.3: MTAs
// SHOULD proactively refresh cached policies before they expire, against
// the interference §10.2 describes).
func (e *entry) refreshAt() time.Time {
	return e.Fetched.Add(time.Duration(e.MaxAge) * time.Second * 3 / 4)
}

func (e *entry) policy() *Policy {
	return &Policy{Mode: e.Mode, MX: e.MX, MaxAge: time.Duration(e.MaxAge) * time.Second}
}

// ExpiredAt is the Store pruner's predicate (queue.PruneSTSPolicies):
// a stored entry past its max_age at now, or one that does not decode.
func ExpiredAt(now time.Time) func(v []byte) bool {
	return func(v []byte) bool {
		var e entry
		if err := json.Unmarshal(v, &e); err != nil || e.V != 1 {
			return true
		}
		return !now.Before(e.expires())
	}
}

// New returns a cache.
func New(o Options) (*Cache, error) {
	if o.Resolver == nil {
		return nil, errors.New("mtasts: a Resolver is required")
	}
	if o.HTTP == nil {
		o.HTTP = NewHTTPClient(nil, nil, FetchTimeout)
	}
	c := &Cache{o: o, log: o.Logger, now: o.Now,
		mem: map[string]*entry{}, failed: map[string]time.Time{}, inflight: map[string]*fetchCall{}}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Policy returns the policy in force for domain, nil when there is none
// (no TXT record and nothing cached, or nothing could be fetched and
// nothing valid is cached: RFC 8461 §3.3 delivers as though the domain
// had no policy). It never returns an expired policy.
func (c *Cache) Policy(ctx context.Context, domain string) *Policy {
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	now := c.now()
	cached := c.cached(domain, now)
	id, txtErr := c.lookupID(ctx, domain)
	switch {
	case txtErr != nil && cached != nil:
		// A failed or absent TXT record does not withdraw a cached
		// policy before its max_age (§3.1, §5.1; §3.3: a valid cached
		// policy applies when no live one can be discovered; §10.2: an
		// attacker who blocks DNS must not turn enforcement off).
		c.log.Debug("mtasts: TXT lookup failed, using the cached policy", "domain", domain, "err", txtErr)
		return cached.policy()
	case txtErr != nil:
		return nil
	case cached != nil && cached.ID == id && now.Before(cached.refreshAt()):
		return cached.policy()
	}
	// No policy cached, a new id (§3.1: the policy changed), or time to
	// refresh: fetch, keeping the cached one if that fails.
	e, err := c.fetch(ctx, domain, id)
	if err != nil {
		if cached != nil {
			c.log.Warn("mtasts: policy refresh failed, keeping the cached policy", "domain", domain,
				"expires", cached.expires(), "err", err)
			return cached.policy()
		}
		c.log.Warn("mtasts: policy fetch failed: delivering as though the domain had no policy (RFC 8461 §3.3)", "domain", domain, "err", err)
		return nil
	}
	return e.policy()
}

// Refresh fetches again, without waiting for mail, the policies in
// memory that are due (three quarters of max_age gone, not expired):
// RFC 8461 §3.3 asks MTAs to refresh cached policies proactively, so
// that a domain mailed rarely neither finds its policy expired (and
// enforcement lifted, §10.2) nor pays for the fetch on the delivery
// path. A failed refresh keeps the cached policy, as on use. It returns
// how many domains were due. Policies only in the store (not used
// since start-up) are refreshed when next used.
func (c *Cache) Refresh(ctx context.Context) int {
	now := c.now()
	c.mu.Lock()
	var due []string
	for d, e := range c.mem {
		if e != nil && !now.Before(e.refreshAt()) && now.Before(e.expires()) {
			due = append(due, d)
		}
	}
	c.mu.Unlock()
	for _, d := range due {
		if ctx.Err() != nil {
			break
		}
		c.Policy(ctx, d)
	}
	return len(due)
}

// cached is domain's unexpired entry, from memory or the store.
func (c *Cache) cached(domain string, now time.Time) *entry {
	c.mu.Lock()
	e, ok := c.mem[domain]
	c.mu.Unlock()
	if !ok && c.o.Store != nil {
		if b, err := c.o.Store.LoadSTSPolicy(domain); err != nil {
			c.log.Warn("mtasts: reading the cached policy", "domain", domain, "err", err)
		} else if b != nil {
			var d entry
			if err := json.Unmarshal(b, &d); err == nil && d.V == 1 {
				e = &d
			}
		}
		c.mu.Lock()
		c.mem[domain] = e // nil too: the store is asked once per domain
		c.mu.Unlock()
	}
	if e == nil {
		return nil
	}
	if !now.Before(e.expires()) {
		c.forget(domain, e)
		return nil
	}
	return e
}

// forget drops an expired entry, unless a newer one replaced it.
func (c *Cache) forget(domain string, old *entry) {
	c.mu.Lock()
	if c.mem[domain] != old {
		c.mu.Unlock()
		return
	}
	c.mem[domain] = nil
	c.mu.Unlock()
	if c.o.Store != nil {
		if err := c.o.Store.DeleteSTSPolicy(domain); err != nil {
			c.log.Warn("mtasts: dropping an expired policy", "domain", domain, "err", err)
		}
	}
}

// errNoRecord: no usable _mta-sts TXT record (none, several, or one that
// does not parse: §3.1 treats all three as "no policy").
var errNoRecord = errors.New("no usable _mta-sts TXT record")

// lookupID reads the id of domain's _mta-sts TXT record (§3.1): the
// records that begin with "v=STSv1" are kept; exactly one must remain
// and parse.
func (c *Cache) lookupID(ctx context.Context, domain string) (string, error) {
	a, err := c.o.Resolver.Lookup(ctx, "_mta-sts."+domain, dns.TypeTXT)
	if err != nil {
		return "", err
	}
	var recs []string
	for _, rr := range a.Records {
		t, ok := rr.(*dns.TXT)
		if !ok {
			continue
		}
		s := strings.Join(t.Txt, "") // one record's strings are one text (RFC 7208 §3.3's reading)
		if strings.HasPrefix(s, "v=STSv1") {
			recs = append(recs, s)
		}
	}
	if len(recs) != 1 {
		return "", fmt.Errorf("%w (%d found)", errNoRecord, len(recs))
	}
	return ParseRecord(recs[0])
}

// fetch gets domain's policy once for all concurrent callers, and not
// again within RetryFetch of a failure; a new policy replaces the cached
// one, in memory and in the store.
func (c *Cache) fetch(ctx context.Context, domain, id string) (*entry, error) {
	c.mu.Lock()
	if until, ok := c.failed[domain]; ok && c.now().Before(until) {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: failed recently, next try after %s", ErrFetch, until.Format(time.RFC3339))
	}
	if call, ok := c.inflight[domain]; ok {
		c.mu.Unlock()
		select {
		case <-call.done:
			return call.e, call.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	call := &fetchCall{done: make(chan struct{})}
	c.inflight[domain] = call
	c.mu.Unlock()

	// Shared by every caller waiting for it: one whose delivery is
	// cancelled must not abort it for the others (the client's timeout
	// bounds it).
	p, err := Fetch(context.WithoutCancel(ctx), c.o.HTTP, domain)
	var e *entry
	if err == nil {
		e = &entry{V: 1, ID: id, Mode: p.Mode, MX: p.MX, MaxAge: int64(p.MaxAge / time.Second), Fetched: c.now()}
	}
	c.mu.Lock()
	delete(c.inflight, domain)
	if err != nil {
		c.failed[domain] = c.now().Add(RetryFetch)
		c.o.Results.Failure(domain, "sts", FetchResult(err))
	} else {
		delete(c.failed, domain)
		c.mem[domain] = e
	}
	c.mu.Unlock()
	call.e, call.err = e, err
	close(call.done)
	if err == nil && c.o.Store != nil {
		b, _ := json.Marshal(e)
		if serr := c.o.Store.SaveSTSPolicy(domain, b); serr != nil {
			c.log.Warn("mtasts: saving the policy", "domain", domain, "err", serr)
		}
	}
	if err == nil {
		c.log.Info("mtasts: policy fetched", "domain", domain, "id", id, "mode", string(e.Mode), "mx", strings.Join(e.MX, ","), "max_age", e.MaxAge)
	}
	return e, err
}

// TLSFor is the MTA-STS source of the outbound TLS precedence
// (outbound.TLSSource): for an MX host of domain under a policy in
// enforce or testing mode, TLS verified for the host's name (RFC 8461
// §4.2); a host outside an enforced policy's patterns must not be used
// (§4.1, §5: an error, a tls-policy failure of that hop), one outside a
// testing policy is reported and used. No policy, or mode none: ok =
// false.
func (c *Cache) TLSFor(ctx context.Context, domain, host string, _ uint16) (outbound.TLSRequirement, bool, error) {
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	p := c.Policy(ctx, domain)
	if p == nil || p.Mode == ModeNone {
		return outbound.TLSRequirement{}, false, nil
	}
	req := outbound.TLSRequirement{Mode: outbound.TLSVerify, Source: "mta-sts", PolicyDomain: domain, PolicyType: "sts",
		ServerName: host, ReportOnly: p.Mode == ModeTesting, PolicyStrings: p.Lines(), MXHosts: p.MX}
	if !p.Match(host) {
		if p.Mode == ModeEnforce {
			return outbound.TLSRequirement{}, false, &outbound.PolicyFailure{Type: "sts", Result: outbound.ResultValidationFailure,
				PolicyStrings: req.PolicyStrings, MXHosts: req.MXHosts,
				Err: fmt.Errorf("MX host %s does not match the MTA-STS policy of %s (mx: %s; RFC 8461 §4.1)", host, domain, strings.Join(p.MX, ", "))}
		}
		c.log.Warn("mtasts: MX host does not match the policy (testing mode: delivering anyway)", "domain", domain, "host", host, "mx", strings.Join(p.MX, ","))
	}
	return req, true, nil
}
