package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"sluice/dsn"
	"sluice/policy"
	"sluice/queue"
	"sluice/reply"
)

// finish reports every recipient's reply to policy, logs one mail-log line
// per attempt, sends DSNs for bounces and expiries, and commits the
// outcome to the queue (record: retried until it commits). ctx is the
// session's; no queue write uses it, since shutdown cancels it. It
// reports whether the connection should end.
func (s *Scheduler) finish(ctx context.Context, name string, j *job, relayName string, hopDSN bool, replies []reply.Reply) (endSession bool) {
	now := s.now()
	st := s.settings()
	ups := make([]queue.Update, 0, len(j.items))
	var notices []dsn.Recipient // what the DSN to the sender reports, if any
	var cut []queue.Update
	first := true // no attempt of this transaction reported yet
	for i, it := range j.items {
		var r reply.Reply
		if i < len(replies) {
			r = replies[i]
		} else {
			r = reply.Reply{Stage: reply.StageDataEnd, Err: errNoReply}
		}
		if cutByUs(ctx, r) {
			cut = append(cut, queue.Update{ID: it.ID, Rcpt: it.Rcpt, State: queue.StateQueued, NextAttempt: now})
			s.log.Info("delivery",
				"id", it.ID, "from", it.From, "to", it.Addr, "relay", relayOrNone(relayName),
				"delay", now.Sub(it.Received).Round(1e6).String(), "attempt", it.Attempts,
				"status", "requeued", "reply", "requeued at shutdown: the delivery was cut by our own stop, not by the receiver ("+r.String()+")")
			endSession = true
			continue
		}
		dec := s.o.Policy.Observe(name, policy.Outcome{Reply: r, Rcpt: it.Addr, Attempts: it.Attempts + 1, Queued: it.Received})
		att := &queue.Attempt{At: now, Relay: relayName, Reply: r.String(), Class: string(dec.Verdict.Class)}
		up := queue.Update{ID: it.ID, Rcpt: it.Rcpt, Attempt: att}
		status := dsnStatus(r, dec.Action)
		// notice is this recipient's line in a DSN (RFC 3464 §2.3).
		notice := func(action, status string) dsn.Recipient {
			return dsn.Recipient{Addr: it.Addr, ORcpt: it.RcptDSN.ORcpt, Action: action, Status: status,
				RemoteMTA: relayHost(relayName), Diagnostic: r.String(), LastAttempt: now}
		}
		notify := it.RcptDSN.Notify
		switch dec.Action {
		case policy.ActionDone:
			up.State, att.Status = queue.StateSent, "sent"
			// RFC 3461 §4.1, §5.2.2: SUCCESS is reported by us only
			// when the next hop does not offer DSN ("relayed"); one that
			// does got NOTIFY and reports delivery itself.
			if notify.Success() && !hopDSN {
				notices = append(notices, notice("relayed", status))
			}
		case policy.ActionBounce:
			up.State, att.Status = queue.StateBounced, "bounced"
			if notify.Failure() {
				notices = append(notices, notice("failed", status))
			}
			if dec.Suppress && st.SuppressUnknown {
				s.suppress(it.Addr, r.String())
			}
		default:
			if now.Sub(it.Received) >= st.MaxQueueLifetime {
				// RFC 3463 4.4.7: delivery time expired.
				up.State, att.Status, status = queue.StateExpired, "expired", "4.4.7"
				if notify.Failure() {
					notices = append(notices, notice("failed", status))
				}
				if s.o.Policy.ObserveExpiry(it.Addr) {
					s.suppress(it.Addr, "repeated soft bounces until expiry: "+r.String())
				}
			} else {
				up.State, att.Status, up.NextAttempt = queue.StateQueued, "deferred", dec.RetryAt
				// A delay notice once per recipient, at the first attempt
				// that finds it queued delivery.delay_warning or longer
				// (Postfix's delay_warning_time), unless NOTIFY excludes
				// DELAY (RFC 3461 §4.1). The null sender gets none.
				if st.DelayWarning > 0 && !it.DelayWarned && j.from != "" && notify.Delay() && now.Sub(it.Received) >= st.DelayWarning {
					notices = append(notices, notice("delayed", status))
					up.DelayWarned = true
				}
			}
		}
		up.Detail = queue.EventDetail{TLS: j.tls, DSN: status}
		if dec.Action != policy.ActionDone {
			up.Detail.Category = string(policy.CategoryOf(r, dec.Verdict))
		}
		if dec.EndSession {
			endSession = true
		}
		if dec.Alarm != "" {
			s.log.Warn("sender alarm", "dest", name, "alarm", dec.Alarm, "fix", dec.Verdict.Fix, "reply", r.String())
		}
		s.log.Info("delivery",
			"id", it.ID, "from", it.From, "to", it.Addr, "relay", relayOrNone(relayName),
			"delay", now.Sub(it.Received).Round(1e6).String(), "attempt", it.Attempts+1,
			"status", att.Status, "dsn", status, "class", string(dec.Verdict.Class), "reply", r.String())
		if s.o.OnAttempt != nil {
			s.o.OnAttempt(Attempt{Dest: name, Domain: it.Domain, Class: dec.Verdict.Class, Status: att.Status, Reply: r, Delay: now.Sub(it.Received), Fix: dec.Verdict.Fix, First: first})
		}
		first = false
		ups = append(ups, up)
	}
	// Recipients cut by our shutdown go back due now, recorded like any
	// outcome (record does not use the cancelled session context).
	o := &outcome{job: j, ups: append(ups, cut...)}
	if len(notices) > 0 && j.from != "" {
		o.dsn = &pendingDSN{rcpts: notices, at: now}
	}
	s.record(o)
	// A deferral may be due before whatever the loop is sleeping towards.
	s.Kick()
	return endSession
}

// rcptDSN are the DSN parameters of j's recipients, for the next hop;
// nil when none has any.
func rcptDSN(j *job) []dsn.Rcpt {
	var out []dsn.Rcpt
	for i, it := range j.items {
		if it.RcptDSN == (dsn.Rcpt{}) {
			continue
		}
		if out == nil {
			out = make([]dsn.Rcpt, len(j.items))
		}
		out[i] = it.RcptDSN
	}
	return out
}

// cutByUs reports a delivery that ended because our own shutdown cut it
// (serve cancels the sessions' context after shutdown_grace). That is
// neither a reply nor a failure of the receiver: it must not be observed
// by policy (no pause persisted, no backoff step), counted as an attempt
// or kept in the history. Only a failure without an SMTP reply counts as
// cut: a reply that made it before the cut, a 250 above all, stands, and
// so does a protocol error, which the receiver caused.
func cutByUs(ctx context.Context, r reply.Reply) bool {
	return ctx.Err() != nil && r.Code == 0 && r.Err != nil && !errors.Is(r.Err, reply.ErrProtocol)
}

func (s *Scheduler) suppress(addr, reason string) {
	if err := s.o.Queue.Suppress(addr, reason); err != nil {
		s.log.Error("suppression failed", "to", addr, "err", err)
	}
}

// bounce queues a DSN (RFC 3464) to the envelope sender. It reads only
// what the DSN returns of the original (all of a small one, the header
// section of a large one), never a whole large body. An error means the
// DSN is not queued and is worth retrying (the original could not be
// read for now, or the queue refused the write): the caller must not
// record the bounce yet, or the sender would never learn of it, or learn
// without the original. An original that is truly gone (ErrNotFound
// while the message is still open) is not retried: the DSN goes without
// it and says so.
func (s *Scheduler) bounce(j *job, d *pendingDSN) error {
	if d.orig == nil && d.gone == "" {
		orig, size, err := readOriginal(s.o.Queue, j.id)
		switch {
		case errors.Is(err, queue.ErrNotFound):
			s.log.Error("the original of a bounced message is gone; the DSN says so", "id", j.id, "err", err)
			d.gone = "the message body could not be found in the queue"
		case err != nil:
			return fmt.Errorf("read the original for the DSN: %w", err)
		default:
			d.orig, d.size = orig, size // kept for a retry of the write below
		}
	}
	env := j.items[0].Env
	requireTLS := j.items[0].RequireTLS
	ret := env.Ret
	if requireTLS {
		// RFC 8689 §5: the report on a REQUIRETLS message must not leak
		// what its sender wanted kept off unprotected links: it returns
		// the header section only, whatever RET asked, and goes back
		// itself with REQUIRETLS (so only over verified TLS).
		ret = dsn.RetHdrs
	}
	msg, err := dsn.Build(dsn.Report{
		ReportingMTA: s.o.Hostname, Sender: j.from, QueueID: j.id, Arrival: j.received,
		EnvID: env.EnvID, Ret: ret,
		Recipients: d.rcpts, Original: d.orig, OriginalSize: d.size, OriginalUnavailable: d.gone, Now: d.at,
	})
	if err != nil {
		// Build fails only on its input (a null sender, no recipient):
		// retrying cannot help.
		s.log.Error("building DSN failed", "id", j.id, "err", err)
		return nil
	}
	// The DSN's own write must not depend on the session: it is part of
	// recording the outcome.
	id, err := s.o.Queue.Enqueue(context.Background(), queue.NewMessage{Rcpts: []string{j.from}, Body: msg, RequireTLS: requireTLS})
	if err != nil {
		return fmt.Errorf("queue the DSN: %w", err)
	}
	s.log.Info("dsn queued", "id", id, "orig_id", j.id, "to", j.from, "recipients", len(d.rcpts), "action", d.rcpts[0].Action)
	s.Kick()
	return nil
}

// readOriginal returns what a DSN returns of message id (dsn.ReadOriginal)
// and the message's full size.
func readOriginal(q Queue, id string) ([]byte, int64, error) {
	b, err := q.OpenBody(id)
	if err != nil {
		return nil, 0, err
	}
	defer b.Close()
	orig, err := dsn.ReadOriginal(b, b.Size())
	return orig, b.Size(), err
}

// dsnStatus is the RFC 3463 status for the log and the DSN: the reply's
// enhanced code, or one derived from the basic code.
func dsnStatus(r reply.Reply, a policy.Action) string {
	if r.Enhanced != "" {
		return r.Enhanced
	}
	switch {
	case r.Code >= 200 && r.Code < 300:
		return "2.0.0"
	case r.Code >= 500 || a == policy.ActionBounce:
		return "5.0.0"
	default:
		return "4.0.0"
	}
}

// relayHost is the host of "host[ip]:port", for Remote-MTA.
func relayHost(relay string) string {
	if i := strings.IndexByte(relay, '['); i > 0 {
		return relay[:i]
	}
	return relay
}

func relayOrNone(r string) string {
	if r == "" {
		return "none"
	}
	return r
}

func sameReply(r reply.Reply, n int) []reply.Reply {
	out := make([]reply.Reply, n)
	for i := range out {
		out[i] = r
	}
	return out
}
