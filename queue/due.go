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
//	domain || 0x00 || be64 NextAttempt || id || be32 idx  -> nil
//
// A domain's keys are contiguous and in due order; the first one is the
// domain's head (its earliest due time). The mapping of domains to
// destinations is the scheduler's (policy's groupings can change with MX
// answers and reloads); the index never names a destination.
//
// The suffix after the domain has a fixed length, so a key splits from
// the right; the 0x00 separator sorts a domain's keys before those of
// any longer domain it is a prefix of ("a.test" before "a.test.example").

// dueSuffixLen is the fixed part of a due key after the domain.
const dueSuffixLen = 1 + 8 + idLen + 4

func dueKey(domain string, t time.Time, id string, idx int) []byte {
	k := make([]byte, len(domain)+dueSuffixLen)
	n := copy(k, domain)
	k[n] = 0
	binary.BigEndian.PutUint64(k[n+1:], timeKey(t))
	copy(k[n+9:], id)
	binary.BigEndian.PutUint32(k[n+9+idLen:], uint32(idx))
	return k
}

// dueKeyUntil is the smallest key of domain that sorts after every entry
// due at or before t.
func dueKeyUntil(domain string, t time.Time) []byte {
	k := make([]byte, len(domain)+9)
	n := copy(k, domain)
	binary.BigEndian.PutUint64(k[n+1:], timeKey(t)+1)
	return k
}

// duePrefix is the common prefix of every due key of domain.
func duePrefix(domain string) []byte {
	return append([]byte(domain), 0)
}

// dueDomainEnd sorts after every due key of domain and before those of
// any other domain.
func dueDomainEnd(domain string) []byte {
	return append([]byte(domain), 1)
}

func parseDueKey(k []byte) (domain string, t time.Time, id string, idx int, err error) {
	n := len(k) - dueSuffixLen
	if n < 0 || k[n] != 0 {
		return "", time.Time{}, "", 0, errBadKey
	}
	ns := binary.BigEndian.Uint64(k[n+1:])
	if ns > 1<<63-1 {
		return "", time.Time{}, "", 0, errBadKey
	}
	return string(k[:n]), time.Unix(0, int64(ns)), string(k[n+9 : n+9+idLen]), int(binary.BigEndian.Uint32(k[n+9+idLen:])), nil
}

// indexDue puts a queued recipient in the due index at r.NextAttempt.
// transition is its only caller.
func (w *wtx) indexDue(id string, idx int, r *rcptRec) error {
	w.touchDue(r.Domain)
	if r.NextAttempt.After(w.now) {
		w.dueInside = true
	}
	return w.b(bktDue).Put(dueKey(r.Domain, r.NextAttempt, id, idx), nil)
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

// unindexDue removes a queued recipient from the due index.
func (w *wtx) unindexDue(id string, idx int, r *rcptRec) error {
	w.touchDue(r.Domain)
	return w.b(bktDue).Delete(dueKey(r.Domain, r.NextAttempt, id, idx))
}

// touchDue notes that domain's head may have changed in this
// transaction, for the due feed (only while someone watches it).
func (w *wtx) touchDue(domain string) {
	if w.dueTouched != nil {
		w.dueTouched[domain] = struct{}{}
	}
}

// dueHead returns the earliest due time of domain (ok=false: nothing of
// domain is due, ever). O(log n).
func dueHead(b *bbolt.Bucket, domain string) (t time.Time, ok bool, err error) {
	p := duePrefix(domain)
	k, _ := b.Cursor().Seek(p)
	if k == nil || !bytes.HasPrefix(k, p) || len(k) != len(p)+dueSuffixLen-1 {
		return time.Time{}, false, nil
	}
	_, t, _, _, err = parseDueKey(k)
	return t, err == nil, err
}

// DueHeads returns the earliest due time of every domain with queued
// recipients. It reads one key per domain (a seek past each domain's
// keys), so it costs O(domains × log n), not O(queued). tx is the ID of
// the last transaction the answer includes (see DueWatch).
func (q *Queue) DueHeads() (heads map[string]time.Time, tx uint64, err error) {
	heads = map[string]time.Time{}
	err = q.view(func(btx *bbolt.Tx) error {
		tx = uint64(btx.ID())
		c := btx.Bucket(bktDue).Cursor()
		for k, _ := c.First(); k != nil; {
			domain, t, _, _, err := parseDueKey(k)
			if err != nil {
				return err
			}
			heads[domain] = t
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
