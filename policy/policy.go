// Package policy decides how sluice treats each receiver. It classifies
// every reply (config rules, then built-in provider rules, then the
// generic reading of RFC 3463 codes and keywords), keeps adaptive state
// per destination (AIMD concurrency and rate, pauses with backoff and a
// half-open probe, suspends, messages per connection, learned greylist
// windows) and computes recipient retry times, always with jitter.
//
// Promises:
//   - A *Policy is safe for concurrent use by many delivery goroutines;
//     all state sits behind one mutex and no call touches the network.
//   - It does no I/O except through the injected StateStore. Destination
//     state that matters across a restart (pauses, backoff steps, learned
//     limits, runtime limits, messages per connection, greylist windows)
//     is saved on change, never per success, and loaded by New. The write
//     happens in the caller of Observe/SetLimits/ResetLimits, outside the
//     lock; a stale version is never written over a newer one.
//   - Time comes only from Options.Now and randomness only from
//     Options.Rand, so tests are deterministic.
package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"sluice/internal/lru"
)

// StateStore persists per-destination state as opaque bytes (JSON).
// LoadDestination returns nil, nil when nothing is stored for name: a
// destination dropped from memory after an idle period is read back from
// the store on its next use.
type StateStore interface {
	LoadDestinations() (map[string][]byte, error)
	LoadDestination(name string) ([]byte, error)
	SaveDestination(name string, state []byte) error
}

// Options configure a Policy. Zero values take the documented defaults.
type Options struct {
	RetryBase, RetryMax time.Duration // recipient backoff base..cap; also destination pause steps (defaults 1m, 4h)
	GreylistDefault     time.Duration // greylist reply with no delay and nothing learned (default 5m)
	GreylistMargin      time.Duration // added after the window (default 1s)
	MaxHint             time.Duration // cap on delay hints (default 1h)
	MaxConcurrency      int           // per destination (default 20)
	MinConcurrency      int           // floor of cuts (default 1)
	// InitialConcurrency > 0 turns on slow start: a destination with no
	// history starts with this many sessions and gains one per success
	// (doubling per round trip) until MaxConcurrency or the first
	// refusal. 0 = start at MaxConcurrency.
	InitialConcurrency int
	Rate               rate.Limit // per destination; 0 = no cap until throttled
	// MinRate is the floor of multiplicative rate cuts. Default 1 message
	// per second: low enough to calm any receiver we have seen, high
	// enough that a backlog of thousands drains within the hour.
	MinRate      rate.Limit
	GroupBy      string // "domain" | "mx" (default "mx")
	Providers    []Provider
	Destinations []DestinationOptions
	Rules        []Rule // config rules, first match wins, before built-ins
	// DecreaseWindow: at most one multiplicative decrease per window
	// (default 1s, roughly a few SMTP round trips: the refusals of one
	// burst of sessions arrive within it). Refusals seen while the
	// destination is already paused never cut again either.
	DecreaseWindow time.Duration
	ThrottlePause  time.Duration // first pause after a throttle; ×2 per step with jitter, cap RetryMax (default RetryBase)
	// IncreaseAfter consecutive successes give +1 concurrency and one rate
	// step up (default 10). A rate step is +10% of the current rate, at
	// least MinRate.
	IncreaseAfter         int
	AlarmShare            float64       // sender-wide alarm share (default 0.5)
	AlarmWindow           time.Duration // default 10m
	AlarmMinDestinations  int           // default 3
	SuppressAfterExpiries int           // consecutive expiries before suppression (default 3; negative = never)

	Now    func() time.Time
	Rand   func() float64 // [0,1) for jitter; nil = math/rand/v2
	Store  StateStore     // nil = no persistence
	Logger *slog.Logger
}

// maxTracked bounds every per-address or per-domain map kept in memory.
const maxTracked = 100000

// Policy is the adaptive per-destination state machine. Create it with New.
type Policy struct {
	o               Options
	rules           []compiledRule
	providers       []Provider
	overrides       map[string]DestinationOptions // normalised match -> limits
	overrideMatches []string                      // keys of overrides, sorted
	log             *slog.Logger

	mu       sync.Mutex
	dests    *lru.Map[string, *dest]
	domains  *lru.Map[string, grouping] // recipient domain -> destination: the one owner of that fact
	grey     map[string]greyRefusal     // dest+"\x00"+rcpt -> refusal times
	expiries map[string]int             // rcpt -> consecutive soft-bounce expiries
	alarm    senderAlarm

	saveMu sync.Mutex // serialises store writes (see saveErr)
}

// New validates the options, fills defaults and loads persisted
// destination state from o.Store.
func New(o Options) (*Policy, error) {
	if err := fillDefaults(&o); err != nil {
		return nil, err
	}
	p := &Policy{
		o:         o,
		log:       o.Logger,
		overrides: map[string]DestinationOptions{},
		dests:     lru.New[string, *dest](),
		domains:   lru.New[string, grouping](),
		grey:      map[string]greyRefusal{},
		expiries:  map[string]int{},
	}
	for i, r := range o.Rules {
		re, err := regexp.Compile(r.Match)
		if err != nil {
			return nil, fmt.Errorf("policy: rule %d: %w", i+1, err)
		}
		if !validClass(r.Class) {
			return nil, fmt.Errorf("policy: rule %d: unknown class %q", i+1, r.Class)
		}
		if !validScope(r.Scope) {
			return nil, fmt.Errorf("policy: rule %d: unknown scope %q", i+1, r.Scope)
		}
		if r.For < 0 {
			return nil, fmt.Errorf("policy: rule %d: negative for", i+1)
		}
		p.rules = append(p.rules, compiledRule{n: i + 1, re: re, r: r})
	}
	for _, d := range o.Destinations {
		if d.MaxConcurrency < 0 || d.Rate < 0 {
			return nil, fmt.Errorf("policy: destination %q: negative limit", d.Match)
		}
		m := normHost(d.Match)
		if m == "" {
			return nil, errors.New("policy: destination with an empty match")
		}
		if _, dup := p.overrides[m]; dup {
			return nil, fmt.Errorf("policy: destination %q: more than one override", d.Match)
		}
		p.overrides[m] = d
		p.overrideMatches = append(p.overrideMatches, m)
	}
	slices.Sort(p.overrideMatches)
	p.providers = append(append(p.providers, o.Providers...), builtinProviders...)
	if o.Store != nil {
		m, err := o.Store.LoadDestinations()
		if err != nil {
			return nil, fmt.Errorf("policy: load destinations: %w", err)
		}
		p.restoreAll(m)
	}
	return p, nil
}

// restoreAll loads every stored destination. The override domains each
// record lists are registered first, so that every destination starts
// with the limits of the domains grouped into it; when two records claim
// one domain (its MX moved), the one changed last wins.
func (p *Policy) restoreAll(m map[string][]byte) {
	now := p.o.Now()
	recs := map[string]persisted{}
	names := make([]string, 0, len(m))
	for name, b := range m {
		var ps persisted
		if err := json.Unmarshal(b, &ps); err != nil {
			// One corrupt record must not stop the relay; that
			// destination starts from the config.
			p.log.Warn("policy: ignoring unreadable destination state", "dest", name, "err", err)
			continue
		}
		recs[name] = ps
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		if c := recs[b].LastChange.Compare(recs[a].LastChange); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, name := range names {
		p.registerMembers(name, recs[name].Members)
	}
	for _, name := range names {
		d := p.newDest(name)
		d.restore(recs[name], p)
		p.dests.Put(name, d, now)
	}
}

func fillDefaults(o *Options) error {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.RetryBase, time.Minute)
	def(&o.RetryMax, 4*time.Hour)
	def(&o.GreylistDefault, 5*time.Minute)
	def(&o.GreylistMargin, time.Second)
	def(&o.MaxHint, time.Hour)
	def(&o.DecreaseWindow, time.Second)
	def(&o.ThrottlePause, o.RetryBase)
	def(&o.AlarmWindow, 10*time.Minute)
	if o.RetryBase < 0 || o.RetryMax < 0 || o.GreylistDefault < 0 || o.GreylistMargin < 0 || o.MaxHint < 0 ||
		o.DecreaseWindow < 0 || o.ThrottlePause < 0 || o.AlarmWindow < 0 {
		return errors.New("policy: negative duration in options")
	}
	if o.RetryMax < o.RetryBase {
		return fmt.Errorf("policy: retry_max %v below retry_base %v", o.RetryMax, o.RetryBase)
	}
	if o.MaxConcurrency == 0 {
		o.MaxConcurrency = 20
	}
	if o.MinConcurrency == 0 {
		o.MinConcurrency = 1
	}
	if o.MinConcurrency < 1 || o.MaxConcurrency < o.MinConcurrency {
		return fmt.Errorf("policy: bad concurrency bounds %d..%d", o.MinConcurrency, o.MaxConcurrency)
	}
	if o.Rate < 0 || o.MinRate < 0 {
		return errors.New("policy: negative rate")
	}
	if o.MinRate == 0 {
		o.MinRate = 1
	}
	if o.Rate > 0 && o.MinRate > o.Rate {
		o.MinRate = o.Rate
	}
	switch o.GroupBy {
	case "":
		o.GroupBy = "mx"
	case "mx", "domain":
	default:
		return fmt.Errorf("policy: unknown group_by %q", o.GroupBy)
	}
	if o.IncreaseAfter <= 0 {
		o.IncreaseAfter = 10
	}
	if o.AlarmShare <= 0 {
		o.AlarmShare = 0.5
	}
	if o.AlarmMinDestinations <= 0 {
		o.AlarmMinDestinations = 3
	}
	if o.SuppressAfterExpiries == 0 {
		o.SuppressAfterExpiries = 3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// rnd returns a jitter sample in [0,1) even from a misbehaving Rand.
func (p *Policy) rnd() float64 {
	r := p.o.Rand()
	if r < 0 || r >= 1 || r != r {
		return 0.5
	}
	return r
}
