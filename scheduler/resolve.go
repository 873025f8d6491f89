package scheduler

import (
	"context"
	"sync"
	"time"
)

// Grouping domains into destinations. Policy owns the map (DestinationOf,
// Group); when it has no fresh grouping, the MX hosts are looked up off
// the loop, at most MaxResolving at a time, so that a domain waiting for
// DNS holds up no other domain: its work is scheduled when the answer
// comes. A domain stays under its last known destination while a lookup
// that would confirm it runs.

// remapAfter is how long a grouping is used before it is confirmed again
// (policy's groupings are fresh for ten minutes; MX hosts move, and a
// reload may change group_by).
const remapAfter = 10 * time.Minute

type resolution struct {
	dm  *domain
	mx  []string
	err error
}

// resolveDue starts lookups for the domains without a destination whose
// work is due, earliest first, while lookups are free.
func (s *Scheduler) resolveDue(ctx context.Context, now time.Time) {
	for len(s.unmapped) > 0 && s.resolving < s.o.MaxResolving {
		dm := s.unmapped[0]
		if dm.head.After(now) {
			return
		}
		s.unmapped.remove(dm)
		s.lookup(ctx, dm)
	}
}

// lookup resolves dm's MX hosts in a goroutine; onResolved takes the
// answer on the loop.
func (s *Scheduler) lookup(ctx context.Context, dm *domain) {
	dm.resolving = true
	s.resolving++
	go func() {
		rctx, cancel := context.WithTimeout(ctx, s.o.ResolveTimeout)
		mx, err := s.o.Outbound.MXHosts(rctx, dm.name)
		cancel()
		s.resolved <- resolution{dm: dm, mx: mx, err: err}
	}()
}

// onResolved records the grouping and puts the domain under its
// destination (moving it when its MX hosts moved).
func (s *Scheduler) onResolved(r resolution) {
	s.resolving--
	dm := r.dm
	dm.resolving = false
	name := s.o.Policy.Group(dm.name, r.mx, r.err)
	if s.domains[dm.name] != dm {
		return // its work was done or deleted meanwhile
	}
	dm.mapped = s.now()
	if dm.dest != nil && dm.dest.name == name {
		return
	}
	s.detach(dm)
	s.attach(dm, name)
}

// confirmed returns the names of doms that are still d's, after
// confirming the groupings older than remapAfter: a fresh grouping in
// policy confirms or moves a domain at once; otherwise a lookup starts
// and the domain stays where it is until the answer.
func (s *Scheduler) confirmed(ctx context.Context, d *dest, doms []string, now time.Time) []string {
	out := doms[:0]
	for _, name := range doms {
		dm := s.domains[name]
		if dm == nil || dm.dest != d {
			continue
		}
		if now.Sub(dm.mapped) >= remapAfter && !dm.resolving {
			dn, ok := s.o.Policy.DestinationOf(name)
			switch {
			case ok && dn == d.name:
				dm.mapped = now
			case ok:
				dm.mapped = now
				s.detach(dm)
				s.attach(dm, dn)
				continue
			case s.resolving < s.o.MaxResolving:
				s.lookup(ctx, dm)
			}
		}
		out = append(out, name)
	}
	return out
}

// groupOverrides looks up, in parallel, the domains that have a
// [[policy.destination]] override, before the first lease: an override
// on a domain hosted at a provider then limits the provider's whole
// destination from the first message to any of its domains, not from the
// first message to that domain (issue 9 item 22). A lookup that fails
// leaves the grouping stored with the destination's state, if any, and
// the domain is looked up again when mail for it comes.
func (s *Scheduler) groupOverrides(ctx context.Context) {
	var wg sync.WaitGroup
	for _, d := range s.o.Policy.OverrideDomains() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok := s.o.Policy.DestinationOf(d); ok {
				return
			}
			rctx, cancel := context.WithTimeout(ctx, s.o.ResolveTimeout)
			mx, err := s.o.Outbound.MXHosts(rctx, d)
			cancel()
			s.o.Policy.Group(d, mx, err)
		}()
	}
	wg.Wait()
}
