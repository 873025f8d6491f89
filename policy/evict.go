package policy

import "time"

// IdleAfter is how long a destination, or a domain's grouping, stays in
// memory unused. Longer than the alarm window and the hour of per-class
// counts the admin view shows, so that dropping an idle destination loses
// nothing anybody reads; short enough that one-off destinations (about
// 7.6 KB each, mostly the recent-success ring) do not pile up.
const IdleAfter = time.Hour

// Sweep drops from memory the destinations and groupings unused for
// IdleAfter, least recently used first, at a cost proportional to the
// number dropped (issue 9 item 27). A destination stays while something
// about it is in force: sessions, a pause or suspension, a throttle
// rule's hold, a ceiling hold that would still double, a rate probe, a
// learned rate cap not yet due to be lifted, a decrease window, or a
// recent attempt the sender alarm counts. Otherwise it goes once a read
// from the store would give it back exactly: when its state differs
// from what is stored (or, with nothing stored, from a fresh one), it is
// written first and dropped when the write is done. Slow start is the
// exception by design: it begins again after an idle period (see
// restImage). Without a store, a destination with learned state stays.
// Groupings of override domains stay: they are few and carry limits.
//
// Group calls Sweep; the scheduler calls it on every loop.
func (p *Policy) Sweep() {
	now := p.o.Now()
	type dirty struct {
		d    *dest
		uses uint64
	}
	var (
		saves   []*pendingSave
		pending []dirty
	)
	p.mu.Lock()
	p.domains.Evict(now, IdleAfter, func(m string, _ grouping) bool {
		_, ov := p.overrides[m]
		return ov
	})
	p.dests.Evict(now, IdleAfter, func(_ string, d *dest) bool {
		if p.inForce(d, now) {
			return true
		}
		rest := p.restImage(d)
		ref := d.disk
		if ref == nil {
			f := p.freshImage(d)
			ref = &f
		}
		if sameImage(rest, *ref) && (d.disk == nil || d.written.Load() >= d.version) {
			return false
		}
		if p.o.Store == nil {
			return true
		}
		d.version++
		if s := p.snapshotForSave(d); s != nil {
			saves = append(saves, s)
		}
		pending = append(pending, dirty{d, d.uses})
		return true
	})
	p.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	for _, s := range saves {
		p.save(s)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, x := range pending {
		d := x.d
		if cur, ok := p.dests.Get(d.name); ok && cur == d && d.uses == x.uses &&
			d.written.Load() >= d.version && !p.inForce(d, now) {
			p.dests.Delete(d.name)
		}
	}
}

// inForce reports whether d holds something that matters now and that a
// reload from the store would not give back. Caller holds p.mu.
func (p *Policy) inForce(d *dest, now time.Time) bool {
	within := func(t time.Time, d time.Duration) bool { return !t.IsZero() && now.Sub(t) < d }
	return d.active > 0 || d.pause.probing || d.blocked(now) ||
		now.Before(d.conc.frozen) || d.conc.ceil.holding(now) || d.rate.ceil.inForce(now) ||
		within(d.conc.lastCut, p.o.DecreaseWindow) ||
		within(d.lastAttempt, p.o.AlarmWindow) || within(d.lastThrottl, p.o.AlarmWindow)
}

// Size reports how many destinations and domain groupings are in memory.
func (p *Policy) Size() (destinations, domains int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dests.Len(), p.domains.Len()
}
