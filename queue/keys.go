package queue

import (
	"encoding/binary"
	"errors"
	"time"
)

// Bucket names. Every write touches these inside one bbolt transaction,
// which is what keeps the indexes consistent with the records.
var (
	bktMsgs     = []byte("msgs")     // id -> msgRec (JSON)
	bktRcpts    = []byte("rcpts")    // id || be32 idx -> rcptRec (JSON)
	bktBodies   = []byte("bodies")   // id -> body bytes
	bktDue      = []byte("ddue")     // domain || lane || be64 nanos || id || be32 idx -> nil: StateQueued only (due.go)
	bktActive   = []byte("active")   // be64 lease deadline || id || be32 idx -> nil: StateActive only (leases, by deadline)
	bktDone     = []byte("done")     // be64 nanos || id -> nil: finished messages by Done
	bktOpen     = []byte("open")     // id -> nil: messages with an open recipient
	bktStats    = []byte("stats")    // state -> be64 recipient count
	bktSuppress = []byte("suppress") // lower-case addr -> suppRec (JSON)
	bktDest     = []byte("dest")     // destination name -> opaque policy state
	// bktDomStats: recipient domain -> domStats (counts per state and an
	// arrival histogram of the open recipients; see counters.go).
	bktDomStats = []byte("domstats")
	// bktRcptIdx: be16 len || domain || class || id || be32 idx -> nil:
	// every recipient, by domain and state class (see counters.go).
	bktRcptIdx = []byte("rcptidx")
)

// bktOldDue is the due index of files written before issue 10 (be64
// nanos || id || be32 idx, one order for every domain); Open moves it to
// bktDue (migrate.go).
var bktOldDue = []byte("due")

var allBuckets = [][]byte{bktMsgs, bktRcpts, bktBodies, bktDue, bktActive, bktDone, bktOpen, bktStats, bktSuppress, bktDest, bktDomStats, bktRcptIdx, bktEvents, bktEvMeta, bktIdem, bktIdemExp, bktMTASTS, bktTLSRPT}

const (
	rcptKeyLen  = idLen + 4
	leaseKeyLen = 8 + idLen + 4
	doneKeyLen  = 8 + idLen
)

var errBadKey = errors.New("queue: malformed index key")

// timeKey encodes t as big-endian Unix nanoseconds so that byte order is
// time order. Times before 1970 (and the zero time) sort first as 0.
func timeKey(t time.Time) uint64 {
	if t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixNano())
}

func rcptKey(id string, idx int) []byte {
	k := make([]byte, rcptKeyLen)
	copy(k, id)
	binary.BigEndian.PutUint32(k[idLen:], uint32(idx))
	return k
}

// leaseKey is the active-index key of a lease: its deadline first, so
// that expired leases are a prefix of the index. A zero deadline (leases
// that never expire) sorts last.
func leaseKey(deadline time.Time, id string, idx int) []byte {
	k := make([]byte, leaseKeyLen)
	n := timeKey(deadline)
	if deadline.IsZero() {
		n = noDeadline
	}
	binary.BigEndian.PutUint64(k, n)
	copy(k[8:], id)
	binary.BigEndian.PutUint32(k[8+idLen:], uint32(idx))
	return k
}

// noDeadline is the key time of a lease without a deadline.
const noDeadline = 1<<64 - 1

// parseLeaseKey parses an active-index key; ok is false for the keys of
// files written before leases had deadlines (id || be32 idx), which
// Open reclaims anyway.
func parseLeaseKey(k []byte) (deadline time.Time, id string, idx int, ok bool) {
	if len(k) != leaseKeyLen {
		return time.Time{}, "", 0, false
	}
	n := binary.BigEndian.Uint64(k)
	id, idx = string(k[8:8+idLen]), int(binary.BigEndian.Uint32(k[8+idLen:]))
	if n == noDeadline {
		return time.Time{}, id, idx, true
	}
	if n > 1<<63-1 {
		return time.Time{}, "", 0, false
	}
	return time.Unix(0, int64(n)), id, idx, true
}

// parseOldDueKey parses a key of bktOldDue.
func parseOldDueKey(k []byte) (t time.Time, id string, idx int, err error) {
	if len(k) != leaseKeyLen {
		return time.Time{}, "", 0, errBadKey
	}
	n := binary.BigEndian.Uint64(k)
	if n > 1<<63-1 {
		return time.Time{}, "", 0, errBadKey
	}
	return time.Unix(0, int64(n)), string(k[8 : 8+idLen]), int(binary.BigEndian.Uint32(k[8+idLen:])), nil
}

func parseRcptKey(k []byte) (id string, idx int, err error) {
	if len(k) != rcptKeyLen {
		return "", 0, errBadKey
	}
	return string(k[:idLen]), int(binary.BigEndian.Uint32(k[idLen:])), nil
}

func doneKey(t time.Time, id string) []byte {
	k := make([]byte, doneKeyLen)
	binary.BigEndian.PutUint64(k, timeKey(t))
	copy(k[8:], id)
	return k
}

func parseDoneKey(k []byte) (t time.Time, id string, err error) {
	if len(k) != doneKeyLen {
		return time.Time{}, "", errBadKey
	}
	n := binary.BigEndian.Uint64(k)
	if n > 1<<63-1 {
		return time.Time{}, "", errBadKey
	}
	return time.Unix(0, int64(n)), string(k[8:]), nil
}
