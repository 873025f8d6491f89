package queue

import (
	"bytes"
	"context"
	"strings"

	"go.etcd.io/bbolt"
)

// Bulk operations over a domain (or the whole queue) never run as one
// transaction: they take a page at a time, each page its own group
// commit, so that the writes waiting meanwhile (new mail above all) go
// in between, and the operator sees progress. Each covers the mail
// queued when it began (up to LastID), so it ends even while mail for
// the same domain keeps arriving.

// BulkPage bounds one step of a bulk operation: the index entries Flush
// reads, and the messages a page of DomainPages names, per commit.
const BulkPage = 500

// DomainPages calls fn with successive pages of at most size IDs of the
// messages that have an open recipient at domain and were queued when it
// began, in ID order. fn changes them (Hold, Release, Delete, Bounce):
// each call is one commit, and other writes go in between. It stops at
// the first error of fn or when ctx ends.
func (q *Queue) DomainPages(ctx context.Context, domain string, size int, fn func(ids []string) error) error {
	upTo, err := q.LastID()
	if err != nil || upTo == "" {
		return err
	}
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ids, err := q.DomainIDs(domain, after, upTo, size)
		if err != nil || len(ids) == 0 {
			return err
		}
		if err := fn(ids); err != nil {
			return err
		}
		after = ids[len(ids)-1]
	}
}

// Flush makes every queued recipient at domain (at every domain when
// empty) due now, in steps of at most BulkPage recipients, each its own
// group commit. progress, when not nil, is called after each step with
// the number of recipients moved so far. It covers the mail queued when
// it began and returns the number of recipients moved.
func (q *Queue) Flush(ctx context.Context, domain string, progress func(moved int)) (int, error) {
	upTo, err := q.LastID()
	if err != nil || upTo == "" {
		return 0, err
	}
	domains := []string{strings.ToLower(domain)}
	if domain == "" {
		if domains, err = q.domainsWith(StateQueued); err != nil {
			return 0, err
		}
	}
	total := 0
	for _, d := range domains {
		if err := q.flushDomain(ctx, d, upTo, &total, progress); err != nil {
			return total, err
		}
	}
	return total, nil
}

// domainsWith lists the domains that count a recipient in state s.
func (q *Queue) domainsWith(s State) ([]string, error) {
	var out []string
	i := stateIndex(s)
	err := q.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bktDomStats).ForEach(func(k, v []byte) error {
			d, err := decodeDomStats(v)
			if err != nil {
				q.log.Error("queue: unreadable counters of a domain", "domain", statsDomain(k), "err", err)
				return nil
			}
			if d.n[i] > 0 {
				out = append(out, statsDomain(k))
			}
			return nil
		})
	})
	return out, err
}

// flushDomain moves the recipients of domain due after now to now, one
// lane of the due index after the other (due.go).
func (q *Queue) flushDomain(ctx context.Context, domain, upTo string, total *int, progress func(int)) error {
	for _, lane := range []byte{laneFirst, laneRetry} {
		if err := q.flushLane(ctx, domain, lane, upTo, total, progress); err != nil {
			return err
		}
	}
	return nil
}

// flushLane moves the recipients of domain's lane due after now to now,
// in steps of at most BulkPage entries. A step starts after the last
// entry the previous one read (and after the step's now: what earlier
// steps moved is due by then).
func (q *Queue) flushLane(ctx context.Context, domain string, lane byte, upTo string, total *int, progress func(int)) error {
	prefix := lanePrefix(domain, lane)
	var pos []byte // the last due key read
	for {
		var (
			n    int
			done bool
			next []byte
		)
		err := q.write(ctx, func(w *wtx) error {
			n, done, next = 0, true, pos
			type ref struct {
				id  string
				idx int
			}
			var refs []ref
			walked := 0
			c := w.b(bktDue).Cursor()
			start := dueKeyUntil(domain, lane, w.now)
			if pos != nil && bytes.Compare(pos, start) >= 0 {
				start = append(bytes.Clone(pos), 0) // the first key after pos
			}
			for k, _ := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				if walked == BulkPage {
					done = false
					break
				}
				walked++
				d, _, _, id, idx, err := parseDueKey(k)
				if err != nil {
					return err
				}
				if d != domain {
					break // a longer domain that starts like this one and a lane byte
				}
				if id <= upTo { // mail queued since the flush began is left as it is
					refs = append(refs, ref{id, idx})
				}
				next = bytes.Clone(k)
			}
			for _, rf := range refs {
				r, err := w.rcpt(rf.id, rf.idx)
				if err != nil {
					return err
				}
				if err := w.transition(rf.id, rf.idx, r, StateQueued, w.now); err != nil {
					return err
				}
				n++
			}
			return nil
		}, nil)
		if err != nil {
			return err
		}
		*total += n
		if progress != nil && n > 0 {
			progress(*total)
		}
		if done {
			return nil
		}
		pos = next
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
