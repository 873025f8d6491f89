package queue

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.etcd.io/bbolt"
)

// The event outbox (issue 13): every state change of a recipient is
// written as an event into bktEvents in the same transaction as the
// change itself, so an event can be neither lost (the change committed,
// the event did not) nor invented (the event committed, the change did
// not). It adds no fsync: the event rides in the group commit of its
// change. Sinks (package events) read the outbox and move a cursor per
// sink; an event is kept until every configured sink has it and for
// EventsConfig.Retention after that, for replay.
//
// Events are stored only while at least one sink is configured
// (ConfigureEvents): with none, emit is one nil check per change.

// Event types. A new kind of event is a new constant here and a call to
// wtx.emit inside the transaction that makes the change (see emitRcpt).
const (
	EventAccepted   = "accepted"   // the message was queued (one per recipient)
	EventDeferred   = "deferred"   // an attempt failed temporarily; next_attempt says when the next is
	EventDelivered  = "delivered"  // the next hop accepted the message after the final dot
	EventBounced    = "bounced"    // refused permanently (or bounced by an operator)
	EventExpired    = "expired"    // still undelivered at the end of the queue lifetime
	EventDelayed    = "delayed"    // a delay notice (DSN Action: delayed) was sent for the recipient
	EventSuppressed = "suppressed" // the address went onto the suppression list
	EventHeld       = "held"       // an operator held the recipient
	EventReleased   = "released"   // an operator released it
	EventDeleted    = "deleted"    // an operator deleted it
)

// EventTypes lists every event type.
var EventTypes = []string{EventAccepted, EventDeferred, EventDelivered, EventBounced, EventExpired,
	EventDelayed, EventSuppressed, EventHeld, EventReleased, EventDeleted}

// ValidEventType reports whether t is one of EventTypes.
func ValidEventType(t string) bool {
	for _, v := range EventTypes {
		if t == v {
			return true
		}
	}
	return false
}

// Event is one delivery event, as sinks send it (JSON). ID is stable: it
// is the outbox sequence number, given once when the event commits, so a
// re-send (after a crash, a retry or a replay) carries the same ID and
// receivers dedupe on it.
type Event struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Time      time.Time `json:"time"`
	MessageID string    `json:"message_id,omitempty"`
	// Rcpt is the recipient's index in the envelope, so that a message
	// with the same address twice still has one fate per recipient.
	// (nil for an event about an address alone: suppressed).
	Rcpt      *int   `json:"rcpt_index,omitempty"`
	Sender    string `json:"sender,omitempty"`
	Recipient string `json:"recipient,omitempty"`
	Attempts  int    `json:"attempts,omitempty"`
	// Class is the classifier's reading of the reply (policy.Class).
	Class string `json:"class,omitempty"`
	Reply string `json:"reply,omitempty"`
	// NextAttempt: deferred only.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	Relay       string    `json:"relay,omitempty"`
	// TLS: delivered only; whether the session to the next hop was
	// encrypted (STARTTLS, RFC 3207).
	TLS *bool `json:"tls,omitempty"`
	// DelaySeconds: delivered, bounced, expired: since the message was
	// received.
	DelaySeconds float64 `json:"delay_seconds,omitempty"`
	// DSN is the RFC 3463 status (bounced, expired, delayed).
	DSN string `json:"dsn,omitempty"`
	// Category is what an application can act on (bounced, expired,
	// deferred): user-unknown, mailbox-full, blocked, spam, policy, auth,
	// throttled, greylisted, too-big, dns, tls, other.
	Category string `json:"category,omitempty"`
	// Reason: suppressed (why), held/released/deleted/bounced by an
	// operator ("operator").
	Reason string `json:"reason,omitempty"`

	seq uint64
}

// Seq is the event's position in the outbox (the number its ID spells).
func (e *Event) Seq() uint64 { return e.seq }

// EventID renders an outbox sequence number as an event ID: 16
// upper-case hex digits, so IDs sort as they were written.
func EventID(seq uint64) string { return fmt.Sprintf("%016X", seq) }

// ParseEventID is the inverse of EventID.
func ParseEventID(id string) (uint64, error) {
	if len(id) != 16 {
		return 0, fmt.Errorf("queue: bad event ID %q", id)
	}
	n, err := strconv.ParseUint(id, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("queue: bad event ID %q", id)
	}
	return n, nil
}

// EventDetail is what the caller of Update knows about an outcome that
// the recipient record does not keep; it goes into the event only.
type EventDetail struct {
	TLS      bool
	DSN      string // RFC 3463 status
	Category string
}

// EventsConfig says whether and how events are stored.
type EventsConfig struct {
	// Sinks names the configured sinks ("webhook:URL", "file:PATH");
	// none: no event is stored. Each has a cursor in the outbox; a new
	// name starts at the current end (its past is `events replay`'s).
	Sinks []string
	// MaxBytes caps the outbox (> 0): past it the oldest events are
	// dropped, undelivered ones counted, logged and alarmed.
	MaxBytes int64
	// Retention keeps events delivered to every sink this long, for
	// replay.
	Retention time.Duration
}

// EventDrop describes the undelivered events that the size cap dropped
// in one commit.
type EventDrop struct {
	First, Last string // event IDs, inclusive
	Count       int64
	At          time.Time
}

// Outbox buckets.
var (
	bktEvents = []byte("events") // be64 seq -> be64 unix nanos || JSON (Event without id)
	bktEvMeta = []byte("evmeta") // "bytes" -> be64; "dropped" -> be64; "lastdrop" -> JSON EventDrop; "c:"+sink -> be64 cursor
)

var (
	evKeyBytes    = []byte("bytes")
	evKeyCount    = []byte("count")
	evKeyDropped  = []byte("dropped")
	evKeyLastDrop = []byte("lastdrop")
)

func cursorKey(sink string) []byte { return []byte("c:" + sink) }

// evState is the per-transaction view of the events config.
type evState struct {
	cfg   EventsConfig
	added int64 // bytes written in this transaction
	n     int   // events written since the last flushEvents
	wrote bool  // an event was written in this transaction
	drop  *EventDrop
}

// emit writes e into the outbox when events are on. Only the commit
// goroutine calls it, inside the transaction of the change it reports.
func (w *wtx) emit(e Event) error {
	if w.ev == nil {
		return nil
	}
	b := w.tx.Bucket(bktEvents)
	b.FillPercent = 0.95 // keys only grow
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	e.ID = ""
	if e.Time.IsZero() {
		e.Time = w.now
	}
	j, err := json.Marshal(&e)
	if err != nil {
		return err
	}
	v := make([]byte, 8+len(j))
	binary.BigEndian.PutUint64(v, timeKey(e.Time))
	copy(v[8:], j)
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	if err := b.Put(k[:], v); err != nil {
		return err
	}
	w.ev.added += int64(len(v) + len(k))
	w.ev.n++
	w.ev.wrote = true
	return nil
}

// emitRcpt emits an event about recipient idx of message id. It reads
// the message record (cached in the transaction) for the sender and the
// receive time.
func (w *wtx) emitRcpt(typ, id string, idx int, r *rcptRec, fill func(e *Event, m *msgRec)) error {
	if w.ev == nil {
		return nil
	}
	m, err := w.msg(id)
	if err != nil {
		return err
	}
	e := Event{Type: typ, MessageID: id, Rcpt: &idx, Sender: m.From, Recipient: r.Addr, Attempts: r.Attempts}
	if fill != nil {
		fill(&e, m)
	}
	return w.emit(e)
}

// emitUpdate emits the event of an outcome applied by Update.
func (w *wtx) emitUpdate(u Update, r *rcptRec) error {
	if w.ev == nil {
		return nil
	}
	var typ string
	switch u.State {
	case StateQueued:
		if u.Attempt == nil {
			return nil // a lease returned unused: nothing happened
		}
		typ = EventDeferred
	case StateSent:
		typ = EventDelivered
	case StateBounced:
		typ = EventBounced
	case StateExpired:
		typ = EventExpired
	default:
		return nil
	}
	return w.emitRcpt(typ, u.ID, u.Rcpt, r, func(e *Event, m *msgRec) {
		if a := u.Attempt; a != nil {
			e.Reply, e.Class, e.Relay = a.Reply, a.Class, a.Relay
			if a.Class == "operator" {
				e.Reason = "operator"
			}
		}
		d := u.Detail
		switch typ {
		case EventDeferred:
			e.NextAttempt = u.NextAttempt
			e.Category = d.Category
		case EventDelivered:
			tls := d.TLS
			e.TLS = &tls
			e.DelaySeconds = delaySeconds(w.now, m.Received)
		default:
			e.DSN, e.Category = d.DSN, d.Category
			e.DelaySeconds = delaySeconds(w.now, m.Received)
		}
	})
}

func delaySeconds(now, received time.Time) float64 {
	return float64(now.Sub(received).Milliseconds()) / 1000
}

// flushEvents updates the outbox size and applies the cap, at the end of
// a transaction that wrote events.
func (w *wtx) flushEvents() error {
	if w.ev == nil || w.ev.n == 0 {
		return nil
	}
	meta := w.tx.Bucket(bktEvMeta)
	total := getU64(meta, evKeyBytes) + uint64(w.ev.added)
	if err := putU64(meta, evKeyCount, getU64(meta, evKeyCount)+uint64(w.ev.n)); err != nil {
		return err
	}
	w.ev.added, w.ev.n = 0, 0
	if max := uint64(w.ev.cfg.MaxBytes); max > 0 && total > max {
		var err error
		if total, err = w.capEvents(meta, total, max); err != nil {
			return err
		}
	}
	return putU64(meta, evKeyBytes, total)
}

// capEvents drops the oldest events until the outbox is at 90 % of max
// (so that the cap is not met again at the next commit). Events already
// delivered to every sink go silently (they were kept for replay only);
// the others are counted, and their ID range is reported after the
// commit (Queue.onEventDrop).
func (w *wtx) capEvents(meta *bbolt.Bucket, total, max uint64) (uint64, error) {
	target := max / 10 * 9
	minCur := w.minCursor(meta)
	c := w.tx.Bucket(bktEvents).Cursor()
	var dropped, deleted int64
	var first, last uint64
	for k, v := c.First(); k != nil && total > target; k, v = c.First() {
		seq := binary.BigEndian.Uint64(k)
		size := uint64(len(k) + len(v))
		if err := c.Delete(); err != nil {
			return 0, err
		}
		deleted++
		total -= min(size, total)
		if seq > minCur {
			if dropped == 0 {
				first = seq
			}
			last = seq
			dropped++
		}
	}
	if err := subU64(meta, evKeyCount, uint64(deleted)); err != nil {
		return 0, err
	}
	if dropped == 0 {
		return total, nil
	}
	d := &EventDrop{First: EventID(first), Last: EventID(last), Count: dropped, At: w.now}
	w.ev.drop = d // logged after the commit, as it is
	if err := putU64(meta, evKeyDropped, getU64(meta, evKeyDropped)+uint64(dropped)); err != nil {
		return 0, err
	}
	// The stored last drop spans an episode: drops that continue the
	// previous range (an endpoint down for a while, the cap met commit
	// after commit) extend it, so status names the whole range lost.
	episode := *d
	if j := meta.Get(evKeyLastDrop); j != nil {
		var prev EventDrop
		if json.Unmarshal(j, &prev) == nil {
			if p, err := ParseEventID(prev.Last); err == nil && p+1 == first {
				episode.First, episode.Count = prev.First, prev.Count+dropped
			}
		}
	}
	j, err := json.Marshal(&episode)
	if err != nil {
		return 0, err
	}
	if err := meta.Put(evKeyLastDrop, j); err != nil {
		return 0, err
	}
	// A sink whose cursor lies in the dropped range now starts after it.
	for _, s := range w.ev.cfg.Sinks {
		if getU64(meta, cursorKey(s)) < last {
			if err := putU64(meta, cursorKey(s), last); err != nil {
				return 0, err
			}
		}
	}
	return total, nil
}

// minCursor is the lowest cursor of the configured sinks: every event up
// to it has reached every sink.
func (w *wtx) minCursor(meta *bbolt.Bucket) uint64 {
	var m uint64 = 1<<64 - 1
	for _, s := range w.ev.cfg.Sinks {
		m = min(m, getU64(meta, cursorKey(s)))
	}
	return m
}

func getU64(b *bbolt.Bucket, k []byte) uint64 {
	if v := b.Get(k); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// subU64 lowers a counter, never below 0.
func subU64(b *bbolt.Bucket, k []byte, n uint64) error {
	v := getU64(b, k)
	return putU64(b, k, v-min(n, v))
}

func putU64(b *bbolt.Bucket, k []byte, n uint64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], n)
	return b.Put(k, v[:])
}

// ConfigureEvents turns the outbox on (at least one sink) or off, and
// sets the cap and the retention. A sink named for the first time gets a
// cursor at the current end of the outbox. It may be called at any time
// (a reload).
func (q *Queue) ConfigureEvents(c EventsConfig) error {
	if len(c.Sinks) > 0 && (c.MaxBytes <= 0 || c.Retention <= 0) {
		return errors.New("queue: events: MaxBytes and Retention must be positive")
	}
	c.Sinks = append([]string(nil), c.Sinks...)
	if len(c.Sinks) == 0 {
		// Off: nothing is stored. The retention still applies to what
		// is left (PruneEvents), when one is given.
		if c.Retention > 0 {
			q.evCfg.Store(&c)
		} else {
			q.evCfg.Store(nil)
		}
		return nil
	}
	err := q.write(context.Background(), func(w *wtx) error {
		b := w.tx.Bucket(bktEvents)
		meta := w.tx.Bucket(bktEvMeta)
		for _, s := range c.Sinks {
			if meta.Get(cursorKey(s)) == nil {
				if err := putU64(meta, cursorKey(s), b.Sequence()); err != nil {
					return err
				}
			}
		}
		return nil
	}, nil)
	if err != nil {
		return err
	}
	q.evCfg.Store(&c)
	return nil
}

// EventsOn reports whether events are being stored.
func (q *Queue) EventsOn() bool { return q.evCfg.Load().on() }

// on reports whether c stores events: a sink is configured.
func (c *EventsConfig) on() bool { return c != nil && len(c.Sinks) > 0 }

// EventsWait returns a channel that is closed when events newer than the
// moment of the call have committed.
func (q *Queue) EventsWait() <-chan struct{} {
	q.evMu.Lock()
	defer q.evMu.Unlock()
	if q.evWake == nil {
		q.evWake = make(chan struct{})
	}
	return q.evWake
}

// eventsCommitted wakes the waiters of EventsWait and reports a drop.
// The commit goroutine calls it after a commit that wrote events.
func (q *Queue) eventsCommitted(drop *EventDrop) {
	q.evMu.Lock()
	if q.evWake != nil {
		close(q.evWake)
		q.evWake = nil
	}
	q.evMu.Unlock()
	if drop != nil {
		q.evDropped.Add(drop.Count)
		q.log.Error("events: the outbox reached events.max_bytes; undelivered events dropped",
			"first", drop.First, "last", drop.Last, "count", drop.Count)
	}
}

// EventsAfter returns up to limit events with a sequence number above
// after, oldest first.
func (q *Queue) EventsAfter(after uint64, limit int) ([]Event, error) {
	var out []Event
	err := q.view(func(tx *bbolt.Tx) error {
		var k0 [8]byte
		binary.BigEndian.PutUint64(k0[:], after+1)
		c := tx.Bucket(bktEvents).Cursor()
		for k, v := c.Seek(k0[:]); k != nil && len(out) < limit; k, v = c.Next() {
			e, err := decodeEvent(k, v)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

func decodeEvent(k, v []byte) (Event, error) {
	var e Event
	if len(k) != 8 || len(v) < 8 {
		return e, errBadKey
	}
	if err := json.Unmarshal(v[8:], &e); err != nil {
		return e, fmt.Errorf("queue: event %x: %w", k, err)
	}
	e.seq = binary.BigEndian.Uint64(k)
	e.ID = EventID(e.seq)
	return e, nil
}

// EventCursor returns the sequence number up to which sink has every
// event.
func (q *Queue) EventCursor(sink string) (uint64, error) {
	var n uint64
	err := q.view(func(tx *bbolt.Tx) error {
		n = getU64(tx.Bucket(bktEvMeta), cursorKey(sink))
		return nil
	})
	return n, err
}

// AckEvents records that sink has every event up to seq. A cursor never
// moves back here (a late ack after a replay must not undo it; see
// RewindEvents).
func (q *Queue) AckEvents(ctx context.Context, sink string, seq uint64) error {
	return q.write(ctx, func(w *wtx) error {
		meta := w.tx.Bucket(bktEvMeta)
		if getU64(meta, cursorKey(sink)) >= seq {
			return nil
		}
		return putU64(meta, cursorKey(sink), seq)
	}, nil)
}

// RewindEvents moves the cursor of each sink back so that every stored
// event at or after since is sent again (`sluice events replay`). It
// returns the ID of the first event to be sent again ("" if none is
// stored from since on) and the number of events from there on.
func (q *Queue) RewindEvents(sinks []string, since time.Time) (first string, n int, err error) {
	err = q.write(context.Background(), func(w *wtx) error {
		first, n = "", 0
		c := w.tx.Bucket(bktEvents).Cursor()
		var start uint64
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(v) < 8 || len(k) != 8 {
				return errBadKey
			}
			if binary.BigEndian.Uint64(v) >= timeKey(since) {
				if n == 0 {
					start = binary.BigEndian.Uint64(k)
				}
				n++
			}
		}
		if n == 0 {
			return nil
		}
		first = EventID(start)
		meta := w.tx.Bucket(bktEvMeta)
		for _, s := range sinks {
			if getU64(meta, cursorKey(s)) >= start {
				if err := putU64(meta, cursorKey(s), start-1); err != nil {
					return err
				}
			}
		}
		return nil
	}, nil)
	return first, n, err
}

// PruneEvents deletes, in one bounded write, the events that every
// configured sink has and that are older than the retention. It returns
// how many went; call it again while it returns a full page.
func (q *Queue) PruneEvents(page int) (int, error) {
	c := q.evCfg.Load()
	if c == nil {
		return 0, nil // never configured: nothing to prune by
	}
	// With no sink configured every stored event is history: it goes
	// after the retention.
	var n int
	err := q.write(context.Background(), func(w *wtx) error {
		n = 0
		meta := w.tx.Bucket(bktEvMeta)
		minCur := uint64(1<<64 - 1)
		for _, s := range c.Sinks {
			minCur = min(minCur, getU64(meta, cursorKey(s)))
		}
		cutoff := timeKey(w.now.Add(-c.Retention))
		cur := w.tx.Bucket(bktEvents).Cursor()
		var freed uint64
		for k, v := cur.First(); k != nil && n < page; k, v = cur.First() {
			if len(k) != 8 || len(v) < 8 {
				return errBadKey
			}
			if binary.BigEndian.Uint64(k) > minCur || binary.BigEndian.Uint64(v) >= cutoff {
				break
			}
			freed += uint64(len(k) + len(v))
			if err := cur.Delete(); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return nil
		}
		if err := subU64(meta, evKeyCount, uint64(n)); err != nil {
			return err
		}
		return subU64(meta, evKeyBytes, freed)
	}, nil)
	return n, err
}

// EventStats is the state of the outbox, for status and metrics.
type EventStats struct {
	On     bool
	Bytes  int64
	Events int
	LastID string // the newest event ("" if none was ever written)
	// Oldest is the time of the oldest stored event.
	Oldest time.Time
	// Dropped counts the undelivered events the size cap ever dropped
	// (kept in the file); LastDrop is the latest drop, if any.
	Dropped  int64
	LastDrop *EventDrop
	// Sinks maps each configured sink to its backlog (events not yet
	// delivered) and the time of its oldest undelivered event.
	Sinks map[string]SinkBacklog
}

// SinkBacklog is one sink's position in the outbox.
type SinkBacklog struct {
	Cursor  string
	Pending int
	Oldest  time.Time
}

// EventStats reads the outbox state in O(sinks) reads: status and
// metric scrapes call it.
func (q *Queue) EventStats() (EventStats, error) {
	var st EventStats
	c := q.evCfg.Load()
	st.On = c.on()
	err := q.view(func(tx *bbolt.Tx) error {
		b, meta := tx.Bucket(bktEvents), tx.Bucket(bktEvMeta)
		st.Bytes = int64(getU64(meta, evKeyBytes))
		st.Events = int(getU64(meta, evKeyCount))
		if s := b.Sequence(); s > 0 {
			st.LastID = EventID(s)
		}
		if _, v := b.Cursor().First(); len(v) >= 8 {
			st.Oldest = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
		}
		st.Dropped = int64(getU64(meta, evKeyDropped))
		if j := meta.Get(evKeyLastDrop); j != nil {
			var d EventDrop
			if json.Unmarshal(j, &d) == nil {
				st.LastDrop = &d
			}
		}
		if !c.on() {
			return nil
		}
		st.Sinks = map[string]SinkBacklog{}
		for _, s := range c.Sinks {
			cur := getU64(meta, cursorKey(s))
			sb := SinkBacklog{Cursor: EventID(cur)}
			var k0 [8]byte
			binary.BigEndian.PutUint64(k0[:], cur+1)
			if k, v := b.Cursor().Seek(k0[:]); k != nil && len(v) >= 8 {
				sb.Oldest = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
			}
			// Sequence numbers are dense above a cursor (drops move the
			// cursors past them), so the backlog is a subtraction.
			if last := b.Sequence(); last > cur {
				sb.Pending = int(last - cur)
			}
			st.Sinks[s] = sb
		}
		return nil
	})
	return st, err
}

// EventsDropped counts the undelivered events dropped by the cap since
// Open (EventStats.Dropped counts them over the file's life).
func (q *Queue) EventsDropped() int64 { return q.evDropped.Load() }
