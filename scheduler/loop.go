package scheduler

import (
	"container/heap"
	"context"
	"time"

	"sluice/queue"
)

// The loop. One goroutine (Run) owns the domains, the destinations'
// place in time and the lease batches; sessions and timers only tell it
// what changed (Scheduler.dirty, kick). Its costs:
//   - per commit that changes a domain's head: one map update and a heap
//     fix (the queue's due feed);
//   - per destination served: one policy.Ready, and a lease of what can
//     start now, batched with the other destinations' into one commit;
//   - per paused or saturated destination: nothing until its time or a
//     session of it ends;
//   - memory: one entry per domain with queued work, one per destination
//     with work, and at most two jobs per open session.

// maxLeaseJobs bounds the jobs one destination leases at a time.
const maxLeaseJobs = 256

// maxLeaseDomains bounds the domains one lease request reads.
const maxLeaseDomains = 16

// reclaimPoll is how often the loop looks for expired leases when none
// has a deadline yet: one O(log n) read.
const reclaimPoll = time.Minute

// watchRetry is the wait between attempts to start the due feed while
// the queue cannot be read.
const watchRetry = 5 * time.Second

// idlePoll bounds the loop's sleep: policy's sweep and the lease reaper
// run at least this often.
const idlePoll = time.Minute

type leaseResult struct {
	items   [][]queue.Item
	err     error
	orphans bool // leases of a failed commit may still be in the file
}

// Run delivers until ctx is cancelled, then waits for sessions in flight
// to finish (they are bounded by the outbound deadlines; cancel the
// sessions' context through grace) and returns mail still waiting in
// memory to the queue, so that nothing stays leased.
func (s *Scheduler) Run(ctx context.Context, sessionCtx context.Context) error {
	s.groupOverrides(ctx)
	watch := s.startWatch(ctx)
	if watch == nil {
		s.shutdown()
		return nil
	}
	defer watch.Close()
	timer := s.clk.NewTimer(idlePoll)
	defer timer.Stop()
	for {
		s.o.Policy.Sweep()
		s.reclaim()
		for name, h := range watch.Take() {
			s.setHead(name, h.At, h.Due)
		}
		if s.reconsider.Swap(false) {
			s.askAgain()
		}
		s.serveDirty(sessionCtx)
		now := s.now()
		// The destinations due now, taken first: one served again at
		// once (it should not be) waits for the next turn.
		var due []*dest
		for len(s.wakes) > 0 && !s.wakes[0].wake.After(now) {
			d := heap.Pop(&s.wakes).(*dest)
			d.wake = time.Time{}
			due = append(due, d)
		}
		for _, d := range due {
			s.serve(sessionCtx, d, now)
		}
		s.resolveDue(ctx, now)
		s.sendLeases(ctx, now)
		timer.Reset(s.sleep(now))
		turn := s.turns.Add(1)
		if s.leasing == nil && s.resolving == 0 {
			s.quiet.Store(turn)
		}
		select {
		case <-ctx.Done():
			s.shutdown()
			return nil
		case <-watch.C():
		case <-s.kick:
		case ch := <-s.inspect:
			ch <- s.views()
		case ch := <-s.ping:
			close(ch)
		case r := <-s.resolved:
			s.onResolved(r)
		case r := <-s.leased:
			s.onLeased(sessionCtx, r)
		case <-timer.C():
		}
		s.quiet.Store(0)
	}
}

// startWatch starts the queue's due feed and loads every domain's head,
// retrying while the queue cannot be read; nil when ctx ends first.
func (s *Scheduler) startWatch(ctx context.Context) queue.DueWatch {
	for {
		w, heads, err := s.o.Queue.WatchDue()
		if err == nil {
			for name, at := range heads {
				s.setHead(name, at, true)
			}
			return w
		}
		s.log.Error("cannot read the queue's due index; retrying", "err", err, "retry_in", watchRetry.String())
		t := s.clk.NewTimer(watchRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
	}
}

// sleep is how long the loop may sleep: until the next destination's
// wake, the next domain to group, or the reaper's next look.
func (s *Scheduler) sleep(now time.Time) time.Duration {
	next := now.Add(idlePoll)
	if len(s.wakes) > 0 && s.wakes[0].wake.Before(next) {
		next = s.wakes[0].wake
	}
	if len(s.unmapped) > 0 && s.resolving < s.o.MaxResolving && s.unmapped[0].head.Before(next) {
		next = s.unmapped[0].head
	}
	if !s.nextReclaim.IsZero() && s.nextReclaim.Before(next) {
		next = s.nextReclaim
	}
	return max(next.Sub(now), time.Millisecond)
}

// setHead applies one entry of the due feed: domain's earliest due time
// is at, or it has no queued work (due false).
func (s *Scheduler) setHead(name string, at time.Time, due bool) {
	dm := s.domains[name]
	if !due {
		if dm == nil {
			return
		}
		delete(s.domains, name)
		if d := dm.dest; d != nil {
			d.domains.remove(dm)
			s.schedule(d)
		} else {
			s.unmapped.remove(dm)
		}
		return
	}
	if dm == nil {
		dm = &domain{name: name, head: at, hidx: -1}
		s.domains[name] = dm
		if dn, ok := s.o.Policy.DestinationOf(name); ok {
			dm.mapped = s.now()
			s.attach(dm, dn)
			return
		}
		s.unmapped.put(dm)
		return
	}
	dm.head = at
	switch {
	case dm.dest != nil:
		dm.dest.domains.put(dm)
		s.schedule(dm.dest)
	case !dm.resolving:
		s.unmapped.put(dm)
	}
}

// attach puts dm under destination name (creating it) and schedules it.
func (s *Scheduler) attach(dm *domain, name string) {
	s.mu.Lock()
	d := s.dests[name]
	if d == nil {
		d = &dest{name: name, hidx: -1}
		s.dests[name] = d
	}
	s.mu.Unlock()
	dm.dest = d
	d.domains.put(dm)
	s.schedule(d)
}

// detach takes dm off its destination.
func (s *Scheduler) detach(dm *domain) {
	if d := dm.dest; d != nil {
		d.domains.remove(dm)
		dm.dest = nil
		s.schedule(d)
	}
}

// schedule places d in time after something about it changed: served at
// the later of its earliest due work (now, for jobs in hand) and the time
// policy named; on an event only when policy said so (a session must
// end), a lease for it is coming or it waits for a session slot; never
// when it has nothing. A destination with nothing at all leaves memory.
func (s *Scheduler) schedule(d *dest) {
	s.mu.Lock()
	ready := len(d.ready)
	s.mu.Unlock()
	var wake time.Time
	if !d.queued && !d.capWait && !d.slot {
		head, ok := d.head()
		if ready > 0 {
			head, ok = s.now(), true
		}
		if ok {
			wake = head
			if d.askAt.After(wake) {
				wake = d.askAt
			}
		}
	}
	switch {
	case wake.IsZero() && d.hidx >= 0:
		heap.Remove(&s.wakes, d.hidx)
		d.wake = time.Time{}
	case wake.IsZero():
	case d.hidx >= 0:
		d.wake = wake
		heap.Fix(&s.wakes, d.hidx)
	default:
		d.wake = wake
		heap.Push(&s.wakes, d)
	}
	if wake.IsZero() {
		s.dropIfIdle(d)
	}
}

// dropIfIdle forgets a destination with no domain, job, session, lease
// or slot wait: the map holds only destinations with work (issue 9 item
// 27, issue 10 item 4); policy keeps what is worth keeping.
func (s *Scheduler) dropIfIdle(d *dest) {
	if len(d.domains) > 0 || d.queued || d.slot || d.hidx >= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.sessions > 0 || len(d.ready) > 0 || s.dests[d.name] != d {
		return
	}
	delete(s.dests, d.name)
	delete(s.dirty, d)
}

// askAgain forgets what policy said about when to ask again, for every
// destination held back by it, so that the turn serves them now.
func (s *Scheduler) askAgain() {
	s.mu.Lock()
	dests := make([]*dest, 0, len(s.dests))
	for _, d := range s.dests {
		dests = append(dests, d)
	}
	s.mu.Unlock()
	now := s.now()
	for _, d := range dests {
		if d.capWait || d.askAt.After(now) {
			d.capWait, d.askAt = false, time.Time{}
			s.schedule(d)
		}
	}
}

// markDirtyLocked asks the loop to serve d (a session took a job, waits
// for one or ended). Caller holds s.mu.
func (s *Scheduler) markDirtyLocked(d *dest) {
	s.dirty[d] = struct{}{}
	s.Kick()
}

// serveDirty serves the destinations sessions asked for, then those
// waiting for a session slot if slots are free.
func (s *Scheduler) serveDirty(ctx context.Context) {
	s.mu.Lock()
	var dirty map[*dest]struct{}
	if len(s.dirty) > 0 {
		dirty, s.dirty = s.dirty, map[*dest]struct{}{}
	}
	free := s.o.MaxSessions - s.sessions
	s.mu.Unlock()
	now := s.now()
	for len(s.slotQueue) > 0 && free > s.promised {
		d := s.slotQueue[0]
		s.serve(ctx, d, now)
		if len(s.slotQueue) > 0 && s.slotQueue[0] == d {
			// It took no slot after all (policy's answer changed): it
			// waits no more; its next turn asks again.
			s.slotQueue = s.slotQueue[1:]
			d.slot = false
			s.schedule(d)
		}
		s.mu.Lock()
		free = s.o.MaxSessions - s.sessions
		s.mu.Unlock()
	}
	if len(s.slotQueue) == 0 {
		s.mu.Lock()
		s.yield = false
		s.mu.Unlock()
	}
	for d := range dirty {
		d.capWait = false
		s.serve(ctx, d, now)
	}
}

// serve asks policy what may start at d and acts on the answer: starts
// sessions for jobs in hand, asks for a lease of what can start now, or
// parks d until the time policy named (or until a session ends). A
// paused destination's few ready jobs go back to the queue when the
// pause is long.
func (s *Scheduler) serve(ctx context.Context, d *dest, now time.Time) {
	if d.queued {
		return // the lease result serves it
	}
	head, has := d.head()
	dueNow := has && !head.After(now)
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return
	}
	ready, idle, busy := len(d.ready), d.idle, d.sessions-d.idle
	s.mu.Unlock()

	// Jobs in hand beyond the one each session will take.
	spare := max(ready-idle-busy, 0)
	var n int
	var at time.Time
	if dueNow || spare > 0 {
		n, at = s.o.Policy.Ready(d.name)
	}
	d.askAt, d.capWait = at, n == 0 && at.IsZero() && (dueNow || spare > 0)
	if n > 0 {
		if free := s.freeSlots(d); free < n {
			if free == 0 {
				s.waitSlot(d)
			}
			n = free
		}
		if n > 0 && d.slot {
			// Its turn in the slot queue has come (it is the head).
			s.slotQueue = s.slotQueue[1:]
			d.slot = false
		}
	}
	// Jobs in hand first: a session for each spare one.
	started, refused, retryAt := s.startSessions(ctx, d, min(n, spare))
	n -= started
	if refused {
		// Policy's time to ask again when it gives one (a policy shared
		// with other nodes refuses what its Ready promised when another
		// node took the slot in between, and knows when to look again),
		// else a second rather than spin.
		n, d.askAt = 0, now.Add(time.Second)
		if retryAt.After(now) && retryAt.Before(d.askAt) {
			d.askAt = retryAt
		}
	}
	// Then a lease of what can start now: a job for each waiting or new
	// session, and, while the destination is open, one ahead for each
	// busy session, so that it goes on without waiting for a lease. Not
	// during a probe, a pause or a wait for a rate token: the session
	// would likely not send it, and it would be leased and handed back
	// for nothing.
	ahead := 0
	if n > 0 || at.IsZero() {
		ahead = busy
	}
	want := min(idle+ahead+started+n-ready, maxLeaseJobs)
	if dueNow && want > 0 {
		// The n sessions that may start when the jobs come keep their
		// session slots meanwhile.
		d.queued, d.want, d.promised = true, want, n
		s.promised += n
		s.pending = append(s.pending, d)
		s.mu.Lock()
		d.dry = false
		s.mu.Unlock()
		s.schedule(d)
		return
	}
	s.mu.Lock()
	if !dueNow && !d.dry {
		// Nothing due: sessions waiting for a refill stop waiting.
		d.dry = true
		d.wakeLocked()
	}
	sessions := d.sessions
	s.mu.Unlock()
	if n == 0 && !at.IsZero() && at.Sub(now) > s.o.HoldThreshold && sessions == 0 {
		s.giveBack(d)
	}
	s.schedule(d)
}

// freeSlots is how many sessions d may open under MaxSessions, less the
// slots promised to leases in flight: none while destinations that asked
// earlier wait for a slot.
func (s *Scheduler) freeSlots(d *dest) int {
	if len(s.slotQueue) > 0 && s.slotQueue[0] != d {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(s.o.MaxSessions-s.sessions-s.promised, 0)
}

// waitSlot queues d for the next free session slot and asks idle
// sessions everywhere to QUIT: an idle connection must not hold a slot
// that mail is waiting for.
func (s *Scheduler) waitSlot(d *dest) {
	if !d.slot {
		d.slot = true
		s.slotQueue = append(s.slotQueue, d)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.yield {
		return
	}
	s.yield = true
	for _, o := range s.dests {
		if o.idle > 0 {
			o.wakeLocked()
		}
	}
}

// startSessions opens up to k sessions at d, each in a slot policy
// admits, and returns how many it opened; refused reports that policy
// admitted fewer than its Ready answer promised (a local policy cannot,
// with one loop asking; a policy shared with other nodes can), with
// policy's time to ask again (zero: none given).
func (s *Scheduler) startSessions(ctx context.Context, d *dest, k int) (n int, refused bool, retryAt time.Time) {
	for ; n < k; n++ {
		if ok, at := s.o.Policy.Admit(d.name); !ok {
			return n, true, at
		}
		s.mu.Lock()
		d.sessions++
		s.sessions++
		s.wg.Add(1)
		s.mu.Unlock()
		go s.session(ctx, d)
	}
	return n, false, time.Time{}
}

// sendLeases hands the destinations waiting for a lease to the queue in
// one batch (one commit), unless a batch is in flight: the next one
// takes whatever waits when it returns.
func (s *Scheduler) sendLeases(ctx context.Context, now time.Time) {
	if s.leasing != nil || len(s.pending) == 0 {
		return
	}
	batch := s.pending
	s.pending = nil
	reqs := make([]queue.LeaseReq, len(batch))
	for i, d := range batch {
		reqs[i] = queue.LeaseReq{Domains: s.confirmed(ctx, d, dueDomains(d, now, d.want), now), MaxJobs: d.want}
	}
	s.leasing = batch
	orphans := s.orphans
	go func() {
		if orphans {
			orphans = !s.returnOrphans(now)
		}
		items, err := s.o.Queue.LeaseDue(now, reqs)
		for _, its := range items {
			s.leases.add(its)
		}
		if err != nil {
			orphans = !s.returnOrphans(now)
		}
		s.leased <- leaseResult{items: items, err: err, orphans: orphans}
	}()
}

// returnOrphans hands back to the due index every lease this scheduler
// does not hold. A lease commit that failed (a failed fsync) may still be
// in the file (the queue's promise is at-least-once): its recipients
// would stay leased until their deadline, an hour and more. Only the
// lease goroutine calls it, with no other lease in flight, so every
// lease not held is such an orphan. It reports success.
func (s *Scheduler) returnOrphans(now time.Time) bool {
	n, err := s.o.Queue.ReturnLeases(now, "", s.leases.held)
	if err != nil {
		s.log.Error("returning the leases of a failed lease commit failed; retrying with the next lease", "err", err)
		return false
	}
	if n > 0 {
		s.log.Warn("a failed lease commit reached the file after all; its leases are due again", "recipients", n)
	}
	return true
}

// dueDomains lists up to want (at most maxLeaseDomains) of d's domains
// with due work, earliest head first.
func dueDomains(d *dest, now time.Time, want int) []string {
	var out []string
	var popped []*domain
	for len(d.domains) > 0 && len(out) < min(want, maxLeaseDomains) {
		dm := d.domains[0]
		if dm.head.After(now) {
			break
		}
		heap.Pop(&d.domains)
		popped = append(popped, dm)
		out = append(out, dm.name)
	}
	for _, dm := range popped {
		heap.Push(&d.domains, dm)
	}
	return out
}

// onLeased puts a batch's jobs in their destinations' ready queues and
// serves each destination again (to start sessions for them).
func (s *Scheduler) onLeased(ctx context.Context, r leaseResult) {
	batch := s.leasing
	s.leasing = nil
	s.orphans = r.orphans
	now := s.now()
	if r.err != nil {
		s.log.Error("queue lease failed", "err", r.err)
	}
	for i, d := range batch {
		d.queued = false
		s.promised -= d.promised
		d.promised = 0
		var jobs []*job
		if r.err == nil && i < len(r.items) {
			jobs = jobsOf(r.items[i])
		}
		s.mu.Lock()
		d.ready = append(d.ready, jobs...)
		d.wakeLocked()
		if len(jobs) < d.want {
			// The domains asked had no more due work (the feed says
			// what is left): nobody should wait for a refill.
			d.dry = true
		}
		s.mu.Unlock()
		if r.err != nil {
			// The queue could not be read: try again in a while, not
			// in a loop.
			d.askAt = now.Add(time.Second)
			s.schedule(d)
			continue
		}
		s.serve(ctx, d, now)
	}
}

// giveBack returns a paused destination's ready jobs to the queue, due
// when they were due: a long pause must not hold leases in memory, and
// the order of the backlog stays as it was. Only a few jobs are ever
// ready (one per session and one ahead), so this is one small write per
// pause, never a rewrite of the backlog.
func (s *Scheduler) giveBack(d *dest) {
	s.mu.Lock()
	jobs := d.ready
	d.ready = nil
	s.mu.Unlock()
	if len(jobs) == 0 {
		return
	}
	s.returnJobs(jobs)
}

// returnJobs hands leased jobs back to the queue at their own due times.
func (s *Scheduler) returnJobs(jobs []*job) {
	var ups []queue.Update
	for _, j := range jobs {
		for _, it := range j.items {
			ups = append(ups, queue.Update{ID: it.ID, Rcpt: it.Rcpt, State: queue.StateQueued, NextAttempt: it.NextAttempt})
		}
	}
	if err := s.o.Queue.Update(context.Background(), ups); err != nil {
		s.log.Error("returning leases failed; they return to due when they expire", "err", err)
	}
	// Whether the write worked or not, nobody here holds these leases
	// any more: after a failure the reaper returns them at their deadline.
	for _, j := range jobs {
		s.leases.drop(j.items)
	}
}

// reclaim has the queue return expired leases that this scheduler no
// longer holds (an outcome lost to a failed commit before it was retried,
// a return that failed) to the due index, when the earliest deadline has
// come. The due feed then brings their domains back.
func (s *Scheduler) reclaim() {
	now := s.now()
	if now.Before(s.nextReclaim) {
		return
	}
	n, next, err := s.o.Queue.Reclaim(now, s.leases.held)
	switch {
	case err != nil:
		s.log.Error("reclaiming expired leases failed", "err", err)
		s.nextReclaim = now.Add(reclaimPoll)
	case next.IsZero():
		s.nextReclaim = now.Add(reclaimPoll)
	default:
		s.nextReclaim = next
	}
	if n > 0 {
		s.log.Warn("expired leases returned to the queue", "recipients", n)
	}
}

// shutdown waits for sessions and gives every ready job back to the queue.
func (s *Scheduler) shutdown() {
	s.mu.Lock()
	s.stopping = true
	for _, d := range s.dests {
		d.wakeLocked() // waiting sessions see stopping and QUIT
	}
	s.mu.Unlock()
	close(s.stopped)
	var jobs []*job
	if s.leasing != nil {
		r := <-s.leased
		for _, its := range r.items {
			jobs = append(jobs, jobsOf(its)...)
		}
		s.leasing = nil
	}
	s.wg.Wait()
	if s.orphans {
		s.returnOrphans(s.now())
	}
	s.mu.Lock()
	for _, d := range s.dests {
		jobs = append(jobs, d.ready...)
		d.ready = nil
	}
	s.mu.Unlock()
	if len(jobs) > 0 {
		s.returnJobs(jobs)
	}
}
