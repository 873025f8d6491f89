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
//   - It does no I/O except through the injected StateStore. Everything
//     a destination learned (see record: slow start, both AIMDs with
//     their ceilings and last cuts, pause, suspension, greylist bracket,
//     messages per connection, runtime limits) is saved on change, never
//     per success, in a versioned encoding, and loaded by New. The write
//     happens in the caller of Observe/SetLimits/ResetLimits, outside the
//     lock; a stale version is never written over a newer one.
//   - Time comes only from Options.Now and randomness only from
//     Options.Rand, so tests are deterministic.
package policy

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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

// maxTracked bounds every per-address or per-domain map kept in memory.
const maxTracked = 100000

// Policy is the adaptive per-destination state machine. Create it with New.
type Policy struct {
	o Options // the settings Reconfigure changes are written under mu
	// rules are read by Classify without mu; Reconfigure swaps them whole.
	rules           atomic.Pointer[ruleSet]
	providers       []Provider
	overrides       map[string]DestinationOptions // normalised match -> limits; replaced whole under mu
	overrideMatches []string                      // keys of overrides, sorted
	log             *slog.Logger

	mu        sync.Mutex
	dests     *lru.Map[string, *dest]
	domains   *lru.Map[string, grouping] // recipient domain -> destination: the one owner of that fact
	grey      map[string]greyRefusal     // dest+"\x00"+rcpt -> refusal times
	expiries  map[string]int             // rcpt -> consecutive soft-bounce expiries
	mailboxes map[string]time.Time       // dest+"\x00"+rcpt -> the mailbox takes nothing before (see holdMailbox)
	alarm     senderAlarm

	saveMu sync.Mutex // serialises store writes (see saveErr)
}

// New validates the options (complete: nothing is filled in, see
// OptionsFrom) and loads persisted destination state from o.Store.
func New(o Options) (*Policy, error) {
	if err := o.check(); err != nil {
		return nil, err
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
	c, err := compile(o)
	if err != nil {
		return nil, err
	}
	p := &Policy{
		o:               o,
		log:             o.Logger,
		overrides:       c.overrides,
		overrideMatches: c.overrideMatches,
		dests:           lru.New[string, *dest](),
		domains:         lru.New[string, grouping](),
		grey:            map[string]greyRefusal{},
		expiries:        map[string]int{},
		mailboxes:       map[string]time.Time{},
	}
	p.rules.Store(c.rules)
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
	recs := map[string]record{}
	names := make([]string, 0, len(m))
	for name, b := range m {
		ps, err := decodeRecord(b)
		if err != nil {
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

// rnd returns a jitter sample in [0,1) even from a misbehaving Rand.
func (p *Policy) rnd() float64 {
	r := p.o.Rand()
	if r < 0 || r >= 1 || r != r {
		return 0.5
	}
	return r
}
