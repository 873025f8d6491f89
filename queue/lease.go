package queue

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"sluice/dsn"
)

// maxLeaseItems bounds the recipients of one lease transaction.
const maxLeaseItems = 1000

// LeaseReq asks LeaseDue for due work of one destination: up to MaxJobs
// messages from Domains, taken in the order given.
type LeaseReq struct {
	Domains []string
	MaxJobs int
}

// LeaseDue answers every request in one group commit. For each, it takes
// due recipients (NextAttempt <= now) of its domains, each domain's from
// its two lanes in turn (first attempts and retries, each in NextAttempt
// order; see leaseDomain), until it holds MaxJobs messages (a message's
// recipients at one domain that are due together count once: they go in
// one SMTP transaction) or maxLeaseItems recipients, and marks them
// StateActive until now+LeaseTimeout. It reads the named domains' part of
// the due index only: O(log n + taken) per domain, whatever else is
// queued. The domains' new heads come through the due feed (WatchDue)
// before LeaseDue returns. out[i] answers reqs[i].
func (q *Queue) LeaseDue(now time.Time, reqs []LeaseReq) (out [][]Item, err error) {
	var turns map[string]bool
	err = q.write(context.Background(), func(w *wtx) error {
		out = make([][]Item, len(reqs))
		for i, rq := range reqs {
			jobs, items := 0, 0
			for _, d := range rq.Domains {
				if jobs >= rq.MaxJobs || items >= maxLeaseItems {
					break
				}
				got, err := q.leaseDomain(w, now, d, rq.MaxJobs-jobs, maxLeaseItems-items)
				if err != nil {
					return err
				}
				out[i] = append(out[i], got...)
				jobs += countJobs(got)
				items += len(got)
			}
		}
		turns = w.turns
		return nil
	}, func() { q.keepTurns(turns) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// countJobs counts the messages of items (a message's items are adjacent).
func countJobs(items []Item) int {
	n := 0
	for i, it := range items {
		if i == 0 || it.ID != items[i-1].ID {
			n++
		}
	}
	return n
}

// Lease takes up to max due recipients of any domain, earliest head
// first (a merge of the domains' heads), one at a time:
// O(domains × log n + max). The scheduler leases per domain (LeaseDue);
// this serves tests and tools.
func (q *Queue) Lease(now time.Time, max int) ([]Item, error) {
	if max <= 0 {
		return nil, nil
	}
	var items []Item
	var turns map[string]bool
	err := q.write(context.Background(), func(w *wtx) error {
		items = items[:0]
		for len(items) < max {
			// The domain with the earliest head goes next, one recipient
			// at a time.
			var best string
			var bestAt time.Time
			found := false
			b := w.b(bktDue)
			c := b.Cursor()
			for k, _ := c.First(); k != nil; {
				domain, _, _, _, _, err := parseDueKey(k)
				if err != nil {
					return err
				}
				t, ok, err := dueHead(b, domain)
				if err != nil {
					return err
				}
				if ok && (!found || t.Before(bestAt)) {
					best, bestAt, found = domain, t, true
				}
				k, _ = c.Seek(dueDomainEnd(domain))
			}
			if !found || bestAt.After(now) {
				break
			}
			got, err := q.leaseDomain(w, now, best, max-len(items), 1)
			if err != nil {
				return err
			}
			items = append(items, got...)
		}
		turns = w.turns
		return nil
	}, func() { q.keepTurns(turns) })
	if err != nil {
		return nil, err
	}
	return items, nil
}

// dueLane walks one lane of a domain's due work, up to what is due.
type dueLane struct {
	c   *bbolt.Cursor
	k   []byte // the next key, nil at the end
	end []byte // keys from here on are not due yet
	any bool   // the lane held a key when the walk began, due or not
}

func newDueLane(b *bbolt.Bucket, domain string, lane byte, now time.Time) *dueLane {
	l := &dueLane{c: b.Cursor(), end: dueKeyUntil(domain, lane, now)}
	p := lanePrefix(domain, lane)
	l.k, _ = l.c.Seek(p)
	l.any = l.k != nil && bytes.HasPrefix(l.k, p)
	return l
}

func (l *dueLane) due() bool { return l.k != nil && bytes.Compare(l.k, l.end) < 0 }

// leaseDomain is LeaseDue inside w, taking at most maxJobs messages and
// maxItems recipients of domain. It takes one job (a message's adjacent
// recipients) at a time from the domain's two lanes in turn, retries
// first, and carries the turn over to the next lease (Queue.retryLast):
// a recipient whose retry has come waits for at most one first attempt
// per retry before it, however large the backlog of first attempts that
// arrived before it, and a burst of retries (a destination back from an
// outage) does not hold fresh mail back either. A lane with nothing due
// gives its turn to the other.
func (q *Queue) leaseDomain(w *wtx, now time.Time, domain string, maxJobs, maxItems int) ([]Item, error) {
	var deadline time.Time
	if q.opts.LeaseTimeout > 0 {
		deadline = now.Add(q.opts.LeaseTimeout)
	}
	type ref struct {
		id  string
		idx int
		key []byte
	}
	var refs []ref
	b := w.b(bktDue)
	lanes := [2]*dueLane{newDueLane(b, domain, laneFirst, now), newDueLane(b, domain, laneRetry, now)}
	retryLast := w.retryLast(q, domain)
	jobs := 0
	for jobs < maxJobs && len(refs) < maxItems {
		pick := laneRetry
		if retryLast {
			pick = laneFirst
		}
		if !lanes[pick].due() {
			pick ^= 1
		}
		l := lanes[pick]
		if !l.due() {
			break
		}
		var job string
		for l.due() && len(refs) < maxItems {
			d, _, _, id, idx, err := parseDueKey(l.k)
			if err != nil {
				return nil, err
			}
			if d != domain || (job != "" && id != job) {
				break
			}
			job = id
			refs = append(refs, ref{id, idx, bytes.Clone(l.k)})
			l.k, _ = l.c.Next()
		}
		if job == "" {
			break // a key of another domain: cannot happen (see due.go)
		}
		jobs++
		retryLast = pick == laneRetry
	}
	if jobs > 0 {
		// With no first attempt queued the turn does not matter: forget
		// it, so that the turns kept are of domains with work.
		w.setRetryLast(domain, retryLast && lanes[laneFirst].any)
	}
	items := make([]Item, 0, len(refs))
	for _, rf := range refs {
		r, err := w.rcpt(rf.id, rf.idx)
		if err != nil {
			return nil, err
		}
		if r.State != StateQueued || r.Domain != domain {
			// Cannot happen while transition is the only writer of the
			// index; drop the stale key rather than wedge the scheduler
			// on it.
			q.log.Error("queue: stale due index entry", "id", rf.id, "rcpt", rf.idx, "state", r.State)
			w.touchDue(domain)
			if err := w.b(bktDue).Delete(rf.key); err != nil {
				return nil, err
			}
			continue
		}
		m, err := w.msg(rf.id)
		if err != nil {
			return nil, err
		}
		next := r.NextAttempt
		if err := w.transition(rf.id, rf.idx, r, StateActive, deadline); err != nil {
			return nil, err
		}
		items = append(items, Item{
			ID: rf.id, Rcpt: rf.idx, Addr: r.Addr, Domain: r.Domain, From: m.From,
			Attempts: r.Attempts, Received: m.Received, NextAttempt: next, SMTPUTF8: m.SMTPUTF8, RequireTLS: m.RequireTLS, TLSReport: m.TLSReport,
			Env: dsn.Envelope{Ret: m.Ret, EnvID: m.EnvID}, RcptDSN: dsn.Rcpt{Notify: r.Notify, ORcpt: r.ORcpt},
			DelayWarned: r.DelayWarned,
		})
	}
	return items, nil
}

// retryLast reports whether domain's last leased job came from the retry
// lane, in this transaction or, before it, in those committed.
func (w *wtx) retryLast(q *Queue, domain string) bool {
	if v, ok := w.turns[domain]; ok {
		return v
	}
	_, ok := q.retryLast[domain]
	return ok
}

func (w *wtx) setRetryLast(domain string, v bool) {
	if w.turns == nil {
		w.turns = map[string]bool{}
	}
	w.turns[domain] = v
}

// keepTurns records the lane turns of a committed transaction. A
// transaction that did not commit leaves the turns as they were, as it
// leaves the leases.
func (q *Queue) keepTurns(turns map[string]bool) {
	for d, v := range turns {
		switch {
		case v && q.retryLast == nil:
			q.retryLast = map[string]struct{}{d: {}}
		case v:
			q.retryLast[d] = struct{}{}
		default:
			delete(q.retryLast, d)
		}
	}
}

// reclaimBatch bounds one Reclaim transaction.
const reclaimBatch = 1000

// Reclaim returns the leases whose deadline is at or before now to the
// due index, due now, so that a recipient whose outcome was never
// recorded (its holder lost it) is retried while the daemon runs, not
// only after a restart. A lease for which held reports true is still in
// use by its holder (a delivery that outlasts the deadline, mail waiting
// in memory, an outcome whose commit is being retried): its deadline is
// extended by LeaseTimeout instead, so an outcome recorded late always
// wins over the reaper and a delivered recipient is never sent again.
// held runs inside the commit goroutine: it must not call the Queue.
//
// The active index is ordered by deadline, so the cost is O(log n) when
// nothing has expired and O(expired) otherwise, never a scan of the
// queue. It returns the number of leases returned to due and the
// earliest deadline still pending (zero when there is none).
func (q *Queue) Reclaim(now time.Time, held func(id string, rcpt int) bool) (reclaimed int, next time.Time, err error) {
	limit := timeKey(now)
	for {
		first, ok, err := q.firstLease()
		if err != nil || !ok {
			return reclaimed, time.Time{}, err
		}
		if timeKey(first) > limit {
			return reclaimed, first, nil
		}
		var n, walked int
		err = q.write(context.Background(), func(w *wtx) error {
			n, walked = 0, 0
			type ref struct {
				id  string
				idx int
				key []byte
			}
			var refs []ref
			c := w.b(bktActive).Cursor()
			for k, _ := c.First(); k != nil && len(refs) < reclaimBatch; k, _ = c.Next() {
				t, id, idx, ok := parseLeaseKey(k)
				if !ok {
					return errBadKey
				}
				if t.IsZero() || timeKey(t) > limit {
					break
				}
				refs = append(refs, ref{id, idx, append([]byte(nil), k...)})
			}
			walked = len(refs)
			for _, rf := range refs {
				r, err := w.rcpt(rf.id, rf.idx)
				if err != nil {
					return err
				}
				if r.State != StateActive || !bytes.Equal(leaseKey(r.LeaseUntil, rf.id, rf.idx), rf.key) {
					// Cannot happen while transition is the only writer
					// of the index; drop the stale key.
					q.log.Error("queue: stale lease index entry", "id", rf.id, "rcpt", rf.idx, "state", r.State)
					if err := w.b(bktActive).Delete(rf.key); err != nil {
						return err
					}
					continue
				}
				if held != nil && held(rf.id, rf.idx) {
					if err := w.b(bktActive).Delete(rf.key); err != nil {
						return err
					}
					r.LeaseUntil = now.Add(max(q.opts.LeaseTimeout, time.Second))
					if err := w.b(bktActive).Put(leaseKey(r.LeaseUntil, rf.id, rf.idx), nil); err != nil {
						return err
					}
					if err := w.putRcpt(rf.id, rf.idx, r); err != nil {
						return err
					}
					continue
				}
				if err := w.transition(rf.id, rf.idx, r, StateQueued, now); err != nil {
					return err
				}
				n++
			}
			return nil
		}, nil)
		if err != nil {
			return reclaimed, time.Time{}, err
		}
		if n > 0 {
			q.log.Warn("queue: expired leases returned to the due index", "recipients", n)
		}
		reclaimed += n
		if walked < reclaimBatch {
			next, _, err := q.firstLease()
			return reclaimed, next, err
		}
	}
}

// ReturnLeases returns to the due index, due now, every lease (of
// recipients at domain, when not empty) that held does not claim, whatever
// its deadline: `queue flush --force`, for an operator who will not wait
// for the reaper. It walks the active index: O(active).
func (q *Queue) ReturnLeases(now time.Time, domain string, held func(id string, rcpt int) bool) (int, error) {
	domain = strings.ToLower(domain)
	var n int
	err := q.write(context.Background(), func(w *wtx) error {
		n = 0
		type ref struct {
			id  string
			idx int
		}
		var refs []ref
		c := w.b(bktActive).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			_, id, idx, ok := parseLeaseKey(k)
			if !ok {
				return errBadKey
			}
			if held == nil || !held(id, idx) {
				refs = append(refs, ref{id, idx})
			}
		}
		for _, rf := range refs {
			r, err := w.rcpt(rf.id, rf.idx)
			if err != nil {
				return err
			}
			if r.State != StateActive || (domain != "" && r.Domain != domain) {
				continue
			}
			if err := w.transition(rf.id, rf.idx, r, StateQueued, now); err != nil {
				return err
			}
			n++
		}
		return nil
	}, nil)
	if n > 0 {
		q.log.Warn("queue: leases no delivery holds returned to the due index", "recipients", n, "domain", domain)
	}
	return n, err
}

// firstLease returns the earliest lease deadline (ok=false when no lease
// has one). O(log n).
func (q *Queue) firstLease() (t time.Time, ok bool, err error) {
	err = q.view(func(tx *bbolt.Tx) error {
		k, _ := tx.Bucket(bktActive).Cursor().First()
		if k == nil {
			return nil
		}
		d, _, _, valid := parseLeaseKey(k)
		if !valid {
			return errBadKey
		}
		t, ok = d, !d.IsZero()
		return nil
	})
	return t, ok, err
}

// Update applies ups in one group commit, all or nothing. Rules, so that
// a worker finishing a lease cannot undo an operator's action:
//   - a recipient already final (e.g. deleted while its delivery ran)
//     keeps its state; only the Attempt is recorded;
//   - a held recipient stays held on StateQueued, but takes a final state.
func (q *Queue) Update(ctx context.Context, ups []Update) error {
	for _, u := range ups {
		switch u.State {
		case StateQueued, StateSent, StateBounced, StateExpired:
		default:
			return fmt.Errorf("queue: update %s recipient %d: state %q not allowed", u.ID, u.Rcpt, u.State)
		}
	}
	if len(ups) == 0 {
		return nil
	}
	return q.write(ctx, func(w *wtx) error {
		for _, u := range ups {
			if err := applyUpdate(w, u); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}

func applyUpdate(w *wtx, u Update) error {
	if !validID(u.ID) || u.Rcpt < 0 {
		return fmt.Errorf("%w: %q recipient %d", ErrNotFound, u.ID, u.Rcpt)
	}
	r, err := w.rcpt(u.ID, u.Rcpt)
	if err != nil {
		return err
	}
	if a := u.Attempt; a != nil {
		r.History = append(r.History, attemptRec(*a))
		r.Attempts++
		r.LastReply, r.LastClass = a.Reply, a.Class
	}
	if u.DelayWarned && !r.DelayWarned {
		r.DelayWarned = true
		if err := w.emitRcpt(EventDelayed, u.ID, u.Rcpt, r, func(e *Event, m *msgRec) {
			if a := u.Attempt; a != nil {
				e.Reply, e.Class, e.Relay = a.Reply, a.Class, a.Relay
			}
			e.DelaySeconds = delaySeconds(w.now, m.Received)
		}); err != nil {
			return err
		}
	}
	switch {
	case !r.State.Open(), r.State == StateHeld && u.State == StateQueued:
		return w.putRcpt(u.ID, u.Rcpt, r)
	default:
		if err := w.transition(u.ID, u.Rcpt, r, u.State, u.NextAttempt); err != nil {
			return err
		}
		return w.emitUpdate(u, r)
	}
}
