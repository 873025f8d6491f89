package queue

import (
	"bytes"
	"container/heap"
	"slices"
	"sort"
	"strings"
	"time"

	"go.etcd.io/bbolt"
)

// The operator reads. None of them scans the queue: List pages through
// an index from Filter.After, and the counts come from the counters that
// every change keeps (counters.go). They run in bbolt read transactions,
// which never wait for the writer (the group commit) and which the
// writer never waits for, except to grow the file's memory map: so each
// read is short, and a caller that streams a long listing reads it page
// by page, each page its own transaction, never holding one open while
// it writes to a slow client.

// List returns the messages having at least one recipient matching f,
// in ID order (IDs sort by arrival), at most f.Limit when it is positive,
// starting after f.After. Its cost is O(log n) per message returned, plus
// the entries skipped for f.State or f.OlderThan within the selected
// index range:
//
//   - no domain and no state: the message records, in ID order;
//   - a domain: that domain's part of the recipient index (for a state,
//     only that state's class);
//   - a state without a domain: the state's class of every domain that
//     counts a recipient in that state, merged (O(domains) to start);
//   - state "active": the lease index, which holds only the recipients
//     in flight.
//
// OlderThan selects on Received; since a message is received after its
// ID was made (IDs hold the arrival time), the walk stops at the first
// ID made after the cutoff.
func (q *Queue) List(f Filter) ([]Message, error) {
	domain := strings.ToLower(f.Domain)
	var cutoff time.Time
	if f.OlderThan > 0 {
		cutoff = q.now().Add(-f.OlderThan)
	}
	var out []Message
	err := q.view(func(tx *bbolt.Tx) error {
		out = out[:0]
		src, err := q.listSource(tx, domain, f.State, f.After)
		if err != nil {
			return err
		}
		for f.Limit <= 0 || len(out) < f.Limit {
			id, ok := src.next()
			if !ok {
				return nil
			}
			if !cutoff.IsZero() && !idTime(id).Before(cutoff) {
				return nil
			}
			q.reads.Add(1)
			m, err := readMessage(tx, id)
			if err != nil {
				return err
			}
			if !cutoff.IsZero() && !m.Received.Before(cutoff) {
				continue
			}
			if matches(m, domain, f.State) {
				out = append(out, *m)
			}
		}
		return nil
	})
	return out, err
}

func matches(m *Message, domain string, s State) bool {
	for _, r := range m.Recipients {
		if (domain == "" || r.Domain == domain) && (s == "" || r.State == s) {
			return true
		}
	}
	return false
}

// idTime is the arrival time an ID holds (its first 9 digits, Unix
// milliseconds in base 32).
func idTime(id string) time.Time {
	var ms int64
	for i := 0; i < 9 && i < len(id); i++ {
		ms = ms<<5 | int64(strings.IndexByte(idAlphabet, id[i]))
	}
	return time.UnixMilli(ms)
}

// idStream yields message IDs in ascending order, each once.
type idStream interface {
	next() (string, bool)
}

func (q *Queue) listSource(tx *bbolt.Tx, domain string, s State, after string) (idStream, error) {
	switch {
	case s == StateActive:
		return q.activeIDs(tx, domain, after)
	case domain == "" && s == "":
		return q.newKeyStream(tx.Bucket(bktMsgs).Cursor(), nil, after), nil
	case domain != "":
		classes := allClasses
		if s != "" {
			classes = []byte{classOf(s)}
		}
		return q.domainStream(tx, domain, classes, after), nil
	default:
		// A state without a domain: merge that class over the domains
		// that count a recipient in the state.
		var streams []idStream
		i := stateIndex(s)
		err := tx.Bucket(bktDomStats).ForEach(func(k, v []byte) error {
			q.reads.Add(1)
			d, err := decodeDomStats(v)
			if err != nil {
				q.log.Error("queue: unreadable counters of a domain", "domain", statsDomain(k), "err", err)
				return nil
			}
			if d.n[i] > 0 {
				streams = append(streams, q.newKeyStream(tx.Bucket(bktRcptIdx).Cursor(), idxPrefix(statsDomain(k), classOf(s)), after))
			}
			return nil
		})
		return mergeStreams(streams), err
	}
}

// domainStream merges the given classes of domain's part of the
// recipient index.
func (q *Queue) domainStream(tx *bbolt.Tx, domain string, classes []byte, after string) idStream {
	streams := make([]idStream, 0, len(classes))
	for _, c := range classes {
		streams = append(streams, q.newKeyStream(tx.Bucket(bktRcptIdx).Cursor(), idxPrefix(domain, c), after))
	}
	return mergeStreams(streams)
}

// keyStream yields the IDs of the keys that start with prefix, an ID
// following the prefix (msgs keys: the ID is the key; index keys: the
// ID and a recipient index follow), after the ID after.
type keyStream struct {
	q      *Queue
	c      *bbolt.Cursor
	prefix []byte
	k      []byte
	after  string
	last   string
}

func (q *Queue) newKeyStream(c *bbolt.Cursor, prefix []byte, after string) *keyStream {
	s := &keyStream{q: q, c: c, prefix: prefix, after: after}
	s.k, _ = c.Seek(append(slices.Clone(prefix), after...))
	return s
}

func (s *keyStream) next() (string, bool) {
	for ; s.k != nil && bytes.HasPrefix(s.k, s.prefix); s.k, _ = s.c.Next() {
		s.q.reads.Add(1)
		rest := s.k[len(s.prefix):]
		if len(rest) < idLen {
			continue
		}
		id := string(rest[:idLen])
		if id == s.last || id <= s.after {
			continue // another recipient of the same message, or After itself
		}
		s.last = id
		s.k, _ = s.c.Next()
		return id, true
	}
	return "", false
}

// sliceStream yields a sorted, duplicate-free slice.
type sliceStream []string

func (s *sliceStream) next() (string, bool) {
	if len(*s) == 0 {
		return "", false
	}
	id := (*s)[0]
	*s = (*s)[1:]
	return id, true
}

// activeIDs are the messages with a recipient in flight (at domain),
// from the lease index: it holds only what deliveries have leased.
func (q *Queue) activeIDs(tx *bbolt.Tx, domain, after string) (idStream, error) {
	var ids []string
	err := tx.Bucket(bktActive).ForEach(func(k, _ []byte) error {
		q.reads.Add(1)
		_, id, idx, ok := parseLeaseKey(k)
		if !ok {
			return errBadKey
		}
		if id <= after {
			return nil
		}
		if domain != "" {
			v := tx.Bucket(bktRcpts).Get(rcptKey(id, idx))
			if v == nil {
				return nil
			}
			r, err := decodeRcpt(v)
			if err != nil {
				return err
			}
			if r.Domain != domain {
				return nil
			}
		}
		ids = append(ids, id)
		return nil
	})
	slices.Sort(ids)
	s := sliceStream(slices.Compact(ids))
	return &s, err
}

// mergeStreams merges ascending streams into one, without duplicates.
func mergeStreams(streams []idStream) idStream {
	if len(streams) == 1 {
		return streams[0]
	}
	m := &mergeStream{}
	for _, s := range streams {
		if id, ok := s.next(); ok {
			m.h = append(m.h, head{id, s})
		}
	}
	heap.Init(&m.h)
	return m
}

type head struct {
	id string
	s  idStream
}

type heads []head

func (h heads) Len() int           { return len(h) }
func (h heads) Less(i, j int) bool { return h[i].id < h[j].id }
func (h heads) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *heads) Push(x any)        { *h = append(*h, x.(head)) }
func (h *heads) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type mergeStream struct {
	h    heads
	last string
}

func (m *mergeStream) next() (string, bool) {
	for m.h.Len() > 0 {
		top := m.h[0]
		if id, ok := top.s.next(); ok {
			m.h[0].id = id
			heap.Fix(&m.h, 0)
		} else {
			heap.Pop(&m.h)
		}
		if top.id != m.last {
			m.last = top.id
			return top.id, true
		}
	}
	return "", false
}

// DomainIDs returns, in ID order, up to limit messages with an open
// recipient at domain whose ID sorts after after and not after upTo
// (the last ID when the bulk operation began, see LastID): one page of
// a bulk operation over a domain. It reads the domain's open part of
// the recipient index: O(log n + limit).
func (q *Queue) DomainIDs(domain, after, upTo string, limit int) ([]string, error) {
	domain = strings.ToLower(domain)
	var out []string
	err := q.view(func(tx *bbolt.Tx) error {
		out = out[:0]
		src := q.domainStream(tx, domain, openClasses, after)
		for len(out) < limit {
			id, ok := src.next()
			if !ok || id > upTo {
				return nil
			}
			out = append(out, id)
		}
		return nil
	})
	return out, err
}

// LastID returns the highest message ID in the queue ("" when empty): a
// bulk operation covers the messages up to it, the mail queued when the
// operation began, so that it ends even while mail keeps arriving.
func (q *Queue) LastID() (string, error) {
	var id string
	err := q.view(func(tx *bbolt.Tx) error {
		k, _ := tx.Bucket(bktMsgs).Cursor().Last()
		id = string(k)
		return nil
	})
	return id, err
}

// DomainCount is the counters of one recipient domain.
type DomainCount struct {
	Domain string
	// States counts the recipients in each state; finished ones until
	// they are pruned.
	States map[State]int
	// Ages counts the open recipients by age: Ages[i] those whose age
	// (from the start of their minute of arrival) is below bounds[i] and
	// not below bounds[i-1]; the last entry counts the rest. Arrivals
	// older than about three hours are all in the last entry.
	Ages []int
}

// Open is the number of open recipients.
func (d DomainCount) Open() int {
	return d.States[StateQueued] + d.States[StateActive] + d.States[StateHeld]
}

// DomainCounts returns the counters of every recipient domain that has
// a recipient in the queue (finished ones included), sorted by domain,
// with the open recipients in age buckets at now whose upper bounds are
// bounds (ascending). It reads one record per domain: O(domains),
// whatever the number of messages.
func (q *Queue) DomainCounts(now time.Time, bounds []time.Duration) ([]DomainCount, error) {
	var out []DomainCount
	err := q.view(func(tx *bbolt.Tx) error {
		out = out[:0]
		return tx.Bucket(bktDomStats).ForEach(func(k, v []byte) error {
			q.reads.Add(1)
			d, err := decodeDomStats(v)
			if err != nil {
				// One unreadable record does not blind the operator to
				// the others; `queue check` names it.
				q.log.Error("queue: unreadable counters of a domain", "domain", statsDomain(k), "err", err)
				return nil
			}
			out = append(out, d.public(statsDomain(k), now, bounds))
			return nil
		})
	})
	return out, err
}

func (d *domStats) public(domain string, now time.Time, bounds []time.Duration) DomainCount {
	out := DomainCount{Domain: domain, States: make(map[State]int, numStates), Ages: make([]int, len(bounds)+1)}
	for i, s := range AllStates {
		out.States[s] = int(d.n[i])
	}
	out.Ages[len(bounds)] += int(d.old)
	for _, h := range d.bins {
		age := now.Sub(binStart(h.bin))
		out.Ages[sort.Search(len(bounds), func(i int) bool { return age < bounds[i] })] += int(h.n)
	}
	return out
}

// RecordsRead counts the records and index entries the operator reads
// (List, DomainIDs, DomainCounts, Counts, Oldest) have touched since
// Open, so that a test can show what a read costs without timing it.
func (q *Queue) RecordsRead() uint64 { return q.reads.Load() }
