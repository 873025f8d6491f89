package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"sluice/dsn"
)

// The hot records, a message's envelope and its recipients, are stored
// in a compact binary form (issue 10 item 4): a version byte, then
// varints, length-prefixed strings and times as Unix nanoseconds. A
// queued 2 KB message's two records take about 95 bytes instead of 215
// as JSON (the times alone were 37 bytes each as text), and a
// recipient's domain is not stored when it is its address's. Records
// written as JSON by earlier versions (they start with '{') are still
// read; `sluice queue export` is the readable form of the queue.
//
// Fields added later are announced by a flag bit and written after the
// fields of the first version, so that a record without them is byte
// for byte what the first version wrote and still reads (issue 13 item
// 5: the DSN parameters).

const recV1 = 1 // first byte of a binary record

// Flag bits of a binary message record.
const (
	msgSMTPUTF8 = 1 << iota
	msgSpooled
	msgEightBit
	msgDSN        // RET and ENVID follow Done
	msgRequireTLS // REQUIRETLS was given at MAIL (RFC 8689); no field of its own
	msgTLSReport  // a TLS-RPT report sluice queued itself; no field of its own
)

// Flag bits of a binary recipient record.
const (
	rcptDomain      = 1 << iota // the domain is stored: it is not the address's
	rcptDSN                     // NOTIFY and ORCPT follow the history
	rcptDelayWarned             // the delay notice was sent
)

var errShortRecord = errors.New("record ends early")

type recWriter struct{ b []byte }

func (w *recWriter) uint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *recWriter) str(s string) {
	w.uint(uint64(len(s)))
	w.b = append(w.b, s...)
}

// time writes 0 for the zero time, else 1 and the Unix nanoseconds.
func (w *recWriter) time(t time.Time) {
	if t.IsZero() {
		w.uint(0)
		return
	}
	w.uint(1)
	w.b = binary.AppendVarint(w.b, t.UnixNano())
}

type recReader struct {
	b   []byte
	err error
}

func (r *recReader) uint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShortRecord
		return 0
	}
	r.b = r.b[n:]
	return v
}

// int reads a count or size: a uint that fits an int.
func (r *recReader) int() int {
	v := r.uint()
	if v > 1<<31 {
		r.err = fmt.Errorf("value %d out of range", v)
		return 0
	}
	return int(v)
}

// size reads a byte count (a message may be larger than an int32 holds).
func (r *recReader) size() int64 {
	v := r.uint()
	if v > 1<<62 {
		r.err = fmt.Errorf("size %d out of range", v)
		return 0
	}
	return int64(v)
}

func (r *recReader) str() string {
	n := r.uint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errShortRecord
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *recReader) time() time.Time {
	switch r.uint() {
	case 0:
		return time.Time{}
	case 1:
	default:
		if r.err == nil {
			r.err = errors.New("bad time")
		}
		return time.Time{}
	}
	if r.err != nil {
		return time.Time{}
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errShortRecord
		return time.Time{}
	}
	r.b = r.b[n:]
	return time.Unix(0, v).UTC()
}

// done reports the reader's error, or one for bytes left over.
func (r *recReader) done() error {
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d bytes left over", len(r.b))
	}
	return r.err
}

func encodeMsg(m *msgRec) []byte {
	w := recWriter{b: make([]byte, 0, 64+len(m.From)+len(m.ClientAddr)+len(m.Helo)+len(m.User))}
	w.b = append(w.b, recV1)
	var f uint64
	if m.SMTPUTF8 {
		f |= msgSMTPUTF8
	}
	if m.Spooled {
		f |= msgSpooled
	}
	if m.EightBit {
		f |= msgEightBit
	}
	if m.Ret != "" || m.EnvID != "" {
		f |= msgDSN
	}
	if m.RequireTLS {
		f |= msgRequireTLS
	}
	if m.TLSReport {
		f |= msgTLSReport
	}
	w.uint(f)
	w.str(m.From)
	w.time(m.Received)
	w.uint(uint64(max(m.Size, 0)))
	w.str(m.ClientAddr)
	w.str(m.Helo)
	w.str(m.User)
	w.uint(uint64(max(m.NRcpt, 0)))
	w.uint(uint64(max(m.Open, 0)))
	w.time(m.Done)
	if f&msgDSN != 0 {
		w.str(string(m.Ret))
		w.str(m.EnvID)
	}
	return w.b
}

func decodeMsgV1(b []byte) (*msgRec, error) {
	r := recReader{b: b[1:]}
	f := r.uint()
	m := &msgRec{
		SMTPUTF8: f&msgSMTPUTF8 != 0, Spooled: f&msgSpooled != 0, EightBit: f&msgEightBit != 0,
		RequireTLS: f&msgRequireTLS != 0, TLSReport: f&msgTLSReport != 0,
		From: r.str(), Received: r.time(), Size: r.size(),
		ClientAddr: r.str(), Helo: r.str(), User: r.str(),
		NRcpt: r.int(), Open: r.int(), Done: r.time(),
	}
	if f&msgDSN != 0 {
		m.Ret, m.EnvID = dsn.Ret(r.str()), r.str()
		if m.Ret != "" && m.Ret != dsn.RetFull && m.Ret != dsn.RetHdrs && r.err == nil {
			r.err = fmt.Errorf("bad RET %q", m.Ret)
		}
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return m, nil
}

// stateCodes numbers the states in a binary recipient record; the order
// is AllStates' and must not change.
func stateCode(s State) uint64 {
	for i, v := range AllStates {
		if v == s {
			return uint64(i)
		}
	}
	return uint64(len(AllStates)) // refused by the decoder
}

func encodeRcpt(rc *rcptRec) []byte {
	w := recWriter{b: make([]byte, 0, 48+len(rc.Addr)+len(rc.LastReply))}
	w.b = append(w.b, recV1)
	var f uint64
	if rc.Domain != domainOf(rc.Addr) {
		f |= rcptDomain
	}
	if rc.Notify != 0 || rc.ORcpt != "" {
		f |= rcptDSN
	}
	if rc.DelayWarned {
		f |= rcptDelayWarned
	}
	w.uint(f)
	w.str(rc.Addr)
	if f&rcptDomain != 0 {
		w.str(rc.Domain)
	}
	w.uint(stateCode(rc.State))
	w.time(rc.NextAttempt)
	w.time(rc.LeaseUntil)
	w.uint(uint64(max(rc.Attempts, 0)))
	w.str(rc.LastReply)
	w.str(rc.LastClass)
	w.uint(uint64(len(rc.History)))
	for _, a := range rc.History {
		w.time(a.At)
		w.str(a.Relay)
		w.str(a.Reply)
		w.str(a.Class)
		w.str(a.Status)
	}
	if f&rcptDSN != 0 {
		w.uint(uint64(rc.Notify))
		w.str(rc.ORcpt)
	}
	return w.b
}

func decodeRcptV1(b []byte) (*rcptRec, error) {
	r := recReader{b: b[1:]}
	f := r.uint()
	rc := &rcptRec{Addr: r.str()}
	if f&rcptDomain != 0 {
		rc.Domain = r.str()
	} else {
		rc.Domain = domainOf(rc.Addr)
	}
	if s := r.uint(); s < uint64(len(AllStates)) {
		rc.State = AllStates[s]
	} else if r.err == nil {
		r.err = fmt.Errorf("bad state %d", s)
	}
	rc.NextAttempt, rc.LeaseUntil = r.time(), r.time()
	rc.Attempts = r.int()
	rc.LastReply, rc.LastClass = r.str(), r.str()
	n := r.int()
	if r.err == nil && n > len(r.b) {
		// Every attempt takes at least a byte: a count beyond what is
		// left is damage, not a reason to allocate.
		r.err = errShortRecord
	}
	for i := 0; i < n && r.err == nil; i++ {
		rc.History = append(rc.History, attemptRec{At: r.time(), Relay: r.str(), Reply: r.str(), Class: r.str(), Status: r.str()})
	}
	rc.DelayWarned = f&rcptDelayWarned != 0
	if f&rcptDSN != 0 {
		rc.Notify = dsn.Notify(r.uint())
		rc.ORcpt = r.str()
		if !rc.Notify.Valid() && r.err == nil {
			r.err = fmt.Errorf("bad NOTIFY %d", rc.Notify)
		}
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return rc, nil
}
