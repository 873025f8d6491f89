package queue

import (
	"bytes"
	"encoding/binary"
	"time"

	"go.etcd.io/bbolt"
)

// The due index is keyed by what is known at enqueue, the recipient
// domain, so that the scheduler finds the next due work of one
// destination without reading any other's (issue 10 item 1):
//
//	domain || lane || be64 NextAttempt || id || be32 idx  -> nil
//
// A domain's keys are contiguous; within them, each lane's keys are in
// due order. The lane byte splits a domain's work in two streams:
// laneFirst (0x00) holds recipients never tried, laneRetry (0x01) those
// tried before (Attempts > 0). LeaseDue takes from the two in turn
// (leaseDomain), as Postfix's queue manager feeds its active queue from
// the incoming and deferred queues alternately: a deferral falls due
// after a backlog that arrived before it, and in one due order it would
// wait behind all of it (bench/throttle's drop: recipients refused
// during the drop waited 26-40 s for their retry, retry_max 10 s). Files
// written before the lanes have every key in laneFirst: such keys are
// served as first attempts, and unindexDue removes a recipient from
// either lane.
//
// The domain's head is the earlier of its lanes' heads. The mapping of
// domains to destinations is the scheduler's (policy's groupings can
// change with MX answers and reloads); the index never names a
// destination.
//
// The suffix after the domain has a fixed length, so a key splits from
// the right; the lane bytes (0x00, 0x01) sort a domain's keys before
// those of any longer domain it is a prefix of ("a.test" before
// "a.test.example"): no domain name holds a byte below 0x02.

// The lanes of a domain's due work.
const (
	laneFirst byte = 0 // never tried
	laneRetry byte = 1 // tried before: a deferral, a flush of deferred mail
)

// laneOf is the lane r belongs in.
func laneOf(r *rcptRec) byte {
	if r.Attempts > 0 {
		return laneRetry
	}
	return laneFirst
}

// dueSuffixLen is the fixed part of a due key after the domain.
const dueSuffixLen = 1 + 8 + idLen + 4

func dueKey(domain string, lane byte, t time.Time, id string, idx int) []byte {
	k := make([]byte, len(domain)+dueSuffixLen)
	n := copy(k, domain)
	k[n] = lane
	binary.BigEndian.PutUint64(k[n+1:], timeKey(t))
	copy(k[n+9:], id)
	binary.BigEndian.PutUint32(k[n+9+idLen:], uint32(idx))
	return k
}

// dueKeyUntil is the smallest key of domain's lane that sorts after
// every entry of the lane due at or before t.
func dueKeyUntil(domain string, lane byte, t time.Time) []byte {
	k := make([]byte, len(domain)+9)
	n := copy(k, domain)
	k[n] = lane
	binary.BigEndian.PutUint64(k[n+1:], timeKey(t)+1)
	return k
}

// lanePrefix is the common prefix of every due key of domain's lane.
func lanePrefix(domain string, lane byte) []byte {
	return append([]byte(domain), lane)
}

// dueDomainEnd sorts after every due key of domain and before those of
// any other domain.
func dueDomainEnd(domain string) []byte {
	return append([]byte(domain), laneRetry+1)
}

func parseDueKey(k []byte) (domain string, lane byte, t time.Time, id string, idx int, err error) {
	n := len(k) - dueSuffixLen
	if n < 0 || k[n] > laneRetry {
		return "", 0, time.Time{}, "", 0, errBadKey
	}
	ns := binary.BigEndian.Uint64(k[n+1:])
	if ns > 1<<63-1 {
		return "", 0, time.Time{}, "", 0, errBadKey
	}
	return string(k[:n]), k[n], time.Unix(0, int64(ns)), string(k[n+9 : n+9+idLen]), int(binary.BigEndian.Uint32(k[n+9+idLen:])), nil
}

// indexDue puts a queued recipient in the due index at r.NextAttempt.
// transition is its only caller.
func (w *wtx) indexDue(id string, idx int, r *rcptRec) error {
	w.touchDue(r.Domain)
	if r.NextAttempt.After(w.now) {
		w.dueInside = true
	}
	return w.b(bktDue).Put(dueKey(r.Domain, laneOf(r), r.NextAttempt, id, idx), nil)
}

// dueFill is the due index's page fill for this transaction. Mail due now
// (fresh mail, a flush, a lease handed back) goes in where the domain's
// past-due entries end, one after the other in ID order: a sequential
// stream, for which full pages waste nothing (90 %). A deferral goes in
// at its own time in the future: random inserts, for which pages split
// in half (bbolt's default) end up fuller than pages split at 90 %, whose
// small right halves fill slowly. Measured with 100,000 deferred
// recipients imported: 64 % full at 0.5, 46 % at 0.9; 50,000 messages
// by SMTP to a paused destination: 89 %.
func (w *wtx) dueFill() float64 {
	if w.dueInside {
		return 0.5
	}
	return 0.9
}

// unindexDue removes a queued recipient from the due index, from
// either lane: its entry may predate the lanes, or the recipient may have
// counted an attempt since it went in (an Update with an Attempt to a
// recipient not leased). Deleting a key that is not there costs a seek
// and writes nothing.
func (w *wtx) unindexDue(id string, idx int, r *rcptRec) error {
	w.touchDue(r.Domain)
	b := w.b(bktDue)
	for _, lane := range []byte{laneFirst, laneRetry} {
		if err := b.Delete(dueKey(r.Domain, lane, r.NextAttempt, id, idx)); err != nil {
			return err
		}
	}
	return nil
}

// touchDue notes that domain's head may have changed in this
// transaction, for the due feed (only while someone watches it).
func (w *wtx) touchDue(domain string) {
	if w.dueTouched != nil {
		w.dueTouched[domain] = struct{}{}
	}
}

// dueHead returns the earliest due time of domain, the earlier of its
// lanes' heads (ok=false: nothing of domain is due, ever). Two seeks.
func dueHead(b *bbolt.Bucket, domain string) (t time.Time, ok bool, err error) {
	c := b.Cursor()
	for _, lane := range []byte{laneFirst, laneRetry} {
		p := lanePrefix(domain, lane)
		k, _ := c.Seek(p)
		if k == nil || !bytes.HasPrefix(k, p) || len(k) != len(p)+dueSuffixLen-1 {
			continue
		}
		_, _, at, _, _, err := parseDueKey(k)
		if err != nil {
			return time.Time{}, false, err
		}
		if !ok || at.Before(t) {
			t, ok = at, true
		}
	}
	return t, ok, nil
}

// DueHeads returns the earliest due time of every domain with queued
// recipients. It reads a few keys per domain (its lanes' heads, and a
// seek past its keys), so it costs O(domains × log n), not O(queued).
// tx is the ID of the last transaction the answer includes (see
// DueWatch).
func (q *Queue) DueHeads() (heads map[string]time.Time, tx uint64, err error) {
	heads = map[string]time.Time{}
	err = q.view(func(btx *bbolt.Tx) error {
		tx = uint64(btx.ID())
		b := btx.Bucket(bktDue)
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
			if ok {
				heads[domain] = t
			}
			k, _ = c.Seek(dueDomainEnd(domain))
		}
		return nil
	})
	return heads, tx, err
}

// NextDue returns the earliest NextAttempt of any queued recipient
// (ok=false when none is queued). O(domains × log n): tests and tools;
// the scheduler keeps the domains' heads itself (DueWatch).
func (q *Queue) NextDue() (t time.Time, ok bool, err error) {
	heads, _, err := q.DueHeads()
	if err != nil {
		return time.Time{}, false, err
	}
	for _, h := range heads {
		if !ok || h.Before(t) {
			t, ok = h, true
		}
	}
	return t, ok, nil
}
