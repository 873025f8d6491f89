package scheduler

import (
	"context"
	"math/rand/v2"
	"time"

	"sluice/dsn"
	"sluice/policy"
	"sluice/queue"
)

// Backoff of an outcome whose commit failed: short at first (a transient
// fsync error), at most recordRetryMax apart while the disk stays bad.
const (
	recordRetryBase = 100 * time.Millisecond
	recordRetryMax  = 10 * time.Second
)

// outcome is the result of one job's delivery attempt, as it must reach
// the queue: a DSN to queue first (when recipients failed), then the
// recipients' new states.
type outcome struct {
	job *job
	ups []queue.Update
	dsn *pendingDSN // nil: no DSN
}

// pendingDSN is a DSN still to be queued for an outcome.
type pendingDSN struct {
	rcpts  []dsn.Recipient // failed, delayed or relayed: each with its Action
	at     time.Time
	orig   []byte // what the DSN returns of the original, once read
	size   int64  // the original's full size
	gone   string // why the original cannot be returned: it is gone
	queued bool
}

// record commits o. A failure (a failed fsync, a full disk, a body that
// cannot be read for the DSN) is retried with jittered backoff until it
// commits or the scheduler stops: the outcome is kept in memory and its
// leases stay held, so the queue's reaper extends them rather than
// handing the recipients to another delivery. It blocks the session
// meanwhile, which is intended: while outcomes cannot be recorded,
// delivering more would only add to what a crash could send twice. The
// writes use a context of their own, never the session's, which shutdown
// cancels.
func (s *Scheduler) record(o *outcome) {
	defer s.leases.drop(o.job.items)
	for attempt := 1; ; attempt++ {
		err := s.commit(o)
		if err == nil {
			if attempt > 1 {
				s.log.Info("delivery outcome recorded after retrying", "id", o.job.id, "attempts", attempt)
			}
			return
		}
		if s.isStopping() {
			s.log.Error("recording delivery outcome failed at shutdown; the recipients stay leased and return to due at the next start",
				"id", o.job.id, "attempts", attempt, "err", err)
			return
		}
		wait := policy.RetryDelay(attempt, recordRetryBase, recordRetryMax, rand.Float64())
		s.log.Error("recording delivery outcome failed; retrying", "id", o.job.id, "attempt", attempt, "retry_in", wait.String(), "err", err)
		select {
		case <-s.after(wait):
		case <-s.stopped:
			// One last try: the disk may be back, and every outcome
			// recorded now is one recipient less to deliver again.
		}
	}
}

// commit queues o's DSN, if it has one not queued yet, then records the
// states. The DSN comes first: a crash between the two may send a second
// DSN, never lose the first.
func (s *Scheduler) commit(o *outcome) error {
	if d := o.dsn; d != nil && !d.queued {
		if err := s.bounce(o.job, d); err != nil {
			return err
		}
		d.queued = true
	}
	return s.o.Queue.Update(context.Background(), o.ups)
}

func (s *Scheduler) isStopping() bool {
	select {
	case <-s.stopped:
		return true
	default:
		return false
	}
}
