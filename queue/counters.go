package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"go.etcd.io/bbolt"
)

// Counters, not scans. Every state change keeps, in the same transaction
// as the change itself (see wtx.count, called from transition):
//
//   - per recipient domain, the number of recipients in each state
//     (finished ones included, until Prune removes them) and a histogram
//     of the open recipients by arrival minute (bktDomStats);
//   - an index of every recipient by (domain, state class, ID), so that
//     `queue list --domain D --state S` and the per-domain bulk
//     operations page through what they select instead of reading every
//     message (bktRcptIdx).
//
// The operator reads (summary, domains, status, metrics, the dashboard)
// therefore cost O(domains), never O(messages).
//
// The index key holds a state class rather than the state: queued and
// active share one class, so a lease or a deferral (the churn of a busy
// queue) leaves the index alone; the few active recipients are found
// through the lease index instead (see List).

// Arrival histograms. Ages move with the clock, so what is stored is the
// arrival time, and the qshape age buckets are computed when read. A
// histogram has one bin per minute of arrival (a message counts as
// received at the start of its minute) for the last foldAge; at every
// write, bins older than that are folded into one "old" count, which
// always reads as the last age bucket (160m+). A domain thus keeps at
// most about foldAge/binWidth bins (maxBins in any case: arrivals
// spread over more minutes, e.g. imported in the future, fold early).
const (
	binWidth = time.Minute
	foldAge  = 3 * time.Hour
	maxBins  = 512
)

// Recipient index classes (the byte after the domain in a bktRcptIdx
// key).
const (
	classPending = 'q' // queued or active
	classHeld    = 'h'
	classSent    = 's'
	classBounced = 'b'
	classExpired = 'e'
	classDeleted = 'd'
)

// allClasses lists every class; openClasses those of open recipients.
var (
	allClasses  = []byte{classPending, classHeld, classSent, classBounced, classExpired, classDeleted}
	openClasses = []byte{classPending, classHeld}
)

func classOf(s State) byte {
	switch s {
	case StateQueued, StateActive:
		return classPending
	case StateHeld:
		return classHeld
	case StateSent:
		return classSent
	case StateBounced:
		return classBounced
	case StateExpired:
		return classExpired
	default:
		return classDeleted
	}
}

// countersVersion is stored under statsVersionKey once the counters and
// the recipient index of a file are complete (see buildCounters).
const countersVersion = 1

var statsVersionKey = []byte("counters-version")

// maxDomainKey bounds the domain part of the counter and index keys
// (bbolt keys are at most 32 KB; a DNS name is at most 253 bytes). A
// longer "domain", which only an import of a hand-made stream could
// bring, is counted under its first maxDomainKey bytes.
const maxDomainKey = 255

func domKey(domain string) string {
	if len(domain) > maxDomainKey {
		return domain[:maxDomainKey]
	}
	return domain
}

// noDomain is the bktDomStats key of the recipients without a domain (an
// address without "@", which only an import can bring): bbolt keys
// cannot be empty, and no domain is a NUL.
const noDomain = "\x00"

// statsKey is the bktDomStats key of domain; statsDomain inverts it.
func statsKey(domain string) []byte {
	if domain = domKey(domain); domain == "" {
		return []byte(noDomain)
	}
	return []byte(domain)
}

func statsDomain(k []byte) string {
	if string(k) == noDomain {
		return ""
	}
	return string(k)
}

// idxPrefix is the key prefix of one domain's class c in bktRcptIdx:
// be16 length of the domain, the domain, the class byte.
func idxPrefix(domain string, c byte) []byte {
	domain = domKey(domain)
	k := make([]byte, 2+len(domain)+1, 2+len(domain)+1+idLen+4)
	binary.BigEndian.PutUint16(k, uint16(len(domain)))
	copy(k[2:], domain)
	k[2+len(domain)] = c
	return k
}

func idxKey(domain string, c byte, id string, idx int) []byte {
	k := idxPrefix(domain, c)
	k = append(k, id...)
	return binary.BigEndian.AppendUint32(k, uint32(idx))
}

// parseIdxKey splits an index key.
func parseIdxKey(k []byte) (domain string, c byte, id string, idx int, err error) {
	if len(k) < 2 {
		return "", 0, "", 0, errBadKey
	}
	n := int(binary.BigEndian.Uint16(k))
	if len(k) != 2+n+1+idLen+4 {
		return "", 0, "", 0, errBadKey
	}
	domain, c = string(k[2:2+n]), k[2+n]
	rest := k[2+n+1:]
	return domain, c, string(rest[:idLen]), int(binary.BigEndian.Uint32(rest[idLen:])), nil
}

// stateIndex is s's position in AllStates (the counters' order).
func stateIndex(s State) int {
	for i, v := range AllStates {
		if v == s {
			return i
		}
	}
	return len(AllStates) - 1 // unreachable: states are validated on decode
}

const numStates = 7 // len(AllStates)

// histBin is one arrival minute of a domain's open recipients.
type histBin struct {
	bin int64 // minutes since the Unix epoch (floor)
	n   int64
}

// domStats is the stored counters of one recipient domain.
type domStats struct {
	n [numStates]int64 // recipients per state, AllStates order
	// oldBefore: arrivals in a bin below it are counted in old.
	oldBefore int64
	old       int64
	bins      []histBin // ascending, each >= oldBefore with n > 0
}

func binOf(t time.Time) int64 {
	s := t.Unix()
	b := s / int64(binWidth/time.Second)
	if s < 0 && s%int64(binWidth/time.Second) != 0 {
		b-- // floor, not truncation, before 1970
	}
	return b
}

func binStart(b int64) time.Time { return time.Unix(b*int64(binWidth/time.Second), 0) }

// empty reports whether the record counts nothing (it is then deleted).
func (d *domStats) empty() bool {
	for _, n := range d.n {
		if n != 0 {
			return false
		}
	}
	return d.old == 0 && len(d.bins) == 0
}

// open is the number of open recipients.
func (d *domStats) open() int64 {
	return d.n[stateIndex(StateQueued)] + d.n[stateIndex(StateActive)] + d.n[stateIndex(StateHeld)]
}

func (d *domStats) addState(s State, delta int64) {
	i := stateIndex(s)
	d.n[i] += delta
	if d.n[i] < 0 {
		d.n[i] = 0 // never below zero; `queue check` reports the drift
	}
}

// addArrival adds delta open recipients that arrived in minute b.
func (d *domStats) addArrival(b, delta int64) {
	if b < d.oldBefore {
		d.old = max(d.old+delta, 0)
		return
	}
	i := sort.Search(len(d.bins), func(i int) bool { return d.bins[i].bin >= b })
	switch {
	case i < len(d.bins) && d.bins[i].bin == b:
		d.bins[i].n += delta
		if d.bins[i].n <= 0 {
			d.bins = append(d.bins[:i], d.bins[i+1:]...)
		}
	case delta > 0:
		d.bins = append(d.bins, histBin{})
		copy(d.bins[i+1:], d.bins[i:])
		d.bins[i] = histBin{bin: b, n: delta}
	}
	// A decrement of a bin that does not exist is drift that `queue
	// check` reports; it is not made worse.
}

// fold moves the bins older than foldAge at now into old, and the oldest
// bins beyond maxBins: they are in the last age bucket for good (or, for
// the excess, counted there early).
func (d *domStats) fold(now time.Time) {
	limit := binOf(now.Add(-foldAge))
	if len(d.bins) > maxBins {
		limit = max(limit, d.bins[len(d.bins)-maxBins].bin)
	}
	if limit <= d.oldBefore {
		return
	}
	i := 0
	for ; i < len(d.bins) && d.bins[i].bin < limit; i++ {
		d.old += d.bins[i].n
	}
	d.bins = append(d.bins[:0], d.bins[i:]...)
	d.oldBefore = limit
}

const domStatsFormat = 1

func (d *domStats) encode() []byte {
	b := make([]byte, 0, 1+numStates*3+20+len(d.bins)*4)
	b = append(b, domStatsFormat)
	for _, n := range d.n {
		b = binary.AppendUvarint(b, uint64(n))
	}
	b = binary.AppendVarint(b, d.oldBefore)
	b = binary.AppendUvarint(b, uint64(d.old))
	b = binary.AppendUvarint(b, uint64(len(d.bins)))
	prev := d.oldBefore
	for _, h := range d.bins {
		b = binary.AppendUvarint(b, uint64(h.bin-prev))
		b = binary.AppendUvarint(b, uint64(h.n))
		prev = h.bin
	}
	return b
}

var errBadDomStats = errors.New("queue: malformed domain counters")

func decodeDomStats(v []byte) (*domStats, error) {
	if len(v) == 0 || v[0] != domStatsFormat {
		return nil, errBadDomStats
	}
	v = v[1:]
	uv := func() (uint64, error) {
		x, n := binary.Uvarint(v)
		if n <= 0 {
			return 0, errBadDomStats
		}
		v = v[n:]
		return x, nil
	}
	d := &domStats{}
	for i := range d.n {
		x, err := uv()
		if err != nil {
			return nil, err
		}
		d.n[i] = int64(x)
	}
	ob, n := binary.Varint(v)
	if n <= 0 {
		return nil, errBadDomStats
	}
	v = v[n:]
	d.oldBefore = ob
	old, err := uv()
	if err != nil {
		return nil, err
	}
	d.old = int64(old)
	nb, err := uv()
	if err != nil || nb > uint64(len(v)) {
		return nil, errBadDomStats
	}
	d.bins = make([]histBin, 0, nb)
	prev := d.oldBefore
	for range nb {
		delta, err := uv()
		if err != nil {
			return nil, err
		}
		cnt, err := uv()
		if err != nil {
			return nil, err
		}
		prev += int64(delta)
		d.bins = append(d.bins, histBin{bin: prev, n: int64(cnt)})
	}
	if len(v) != 0 {
		return nil, errBadDomStats
	}
	return d, nil
}

// dom loads (and caches for this transaction) the counters of domain.
func (w *wtx) dom(domain string) (*domStats, error) {
	domain = domKey(domain)
	if d, ok := w.doms[domain]; ok {
		return d, nil
	}
	d := &domStats{}
	if v := w.b(bktDomStats).Get(statsKey(domain)); v != nil {
		var err error
		if d, err = decodeDomStats(v); err != nil {
			// Counters are derived data: an unreadable record must not
			// stop mail to the domain. It starts over (and is
			// rewritten); `queue check` reports the drift.
			log := w.log
			if log == nil {
				log = slog.Default()
			}
			log.Error("queue: unreadable counters of a domain; they start over", "domain", domain, "err", err)
			d = &domStats{}
		}
	}
	w.doms[domain] = d
	return d, nil
}

// count keeps the domain counters and the recipient index in step with
// the change of recipient idx of message id (at domain) from state from
// ("" for a new recipient) to state to. transition calls it; it is the
// only writer of both, with uncount (Prune).
func (w *wtx) count(id string, idx int, domain string, from, to State) error {
	d, err := w.dom(domain)
	if err != nil {
		return err
	}
	if from != "" {
		d.addState(from, -1)
	}
	d.addState(to, 1)
	if from.Open() != to.Open() {
		m, err := w.msg(id)
		if err != nil {
			return err
		}
		delta := int64(1)
		if !to.Open() {
			delta = -1
		}
		d.fold(w.now)
		d.addArrival(binOf(m.Received), delta)
	}
	w.dirtyDoms[domKey(domain)] = true
	if from != "" && classOf(from) == classOf(to) {
		return nil
	}
	b := w.b(bktRcptIdx)
	if from != "" {
		if err := b.Delete(idxKey(domain, classOf(from), id, idx)); err != nil {
			return err
		}
	}
	return b.Put(idxKey(domain, classOf(to), id, idx), nil)
}

// uncount forgets a finished recipient that Prune removes.
func (w *wtx) uncount(id string, idx int, domain string, s State) error {
	d, err := w.dom(domain)
	if err != nil {
		return err
	}
	d.addState(s, -1)
	w.dirtyDoms[domKey(domain)] = true
	return w.b(bktRcptIdx).Delete(idxKey(domain, classOf(s), id, idx))
}

// flushCounters writes back the domain counters changed in this
// transaction; a domain that counts nothing any more is dropped, so the
// reads stay O(domains with mail).
func (w *wtx) flushCounters() error {
	b := w.b(bktDomStats)
	for domain := range w.dirtyDoms {
		d := w.doms[domain]
		var err error
		if d.empty() {
			err = b.Delete(statsKey(domain))
		} else {
			err = b.Put(statsKey(domain), d.encode())
		}
		if err != nil {
			return err
		}
	}
	clear(w.dirtyDoms)
	return nil
}

// countersBuildBatch bounds the recipients of one transaction of
// buildCounters.
const countersBuildBatch = 20000

// countersBuilt reports whether the counters of the file are complete.
func countersBuilt(tx *bbolt.Tx) bool {
	v := tx.Bucket(bktStats).Get(statsVersionKey)
	return len(v) == 8 && binary.BigEndian.Uint64(v) >= countersVersion
}

// buildCounters builds the per-state and per-domain counters and the
// recipient index from the records, once, for a file written by a
// version of sluice that kept neither (or whose build a crash cut
// short: it starts over). It runs at Open before anything else writes,
// in batches so that a large queue does not make one huge transaction;
// the version key is written last, with the counters.
func (q *Queue) buildCounters(now time.Time) error {
	var built bool
	if err := q.db.View(func(tx *bbolt.Tx) error { built = countersBuilt(tx); return nil }); err != nil {
		return err
	}
	if built {
		return nil
	}
	err := q.db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bktDomStats, bktRcptIdx} {
			if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, bbolt.ErrBucketNotFound) {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	doms := map[string]*domStats{}
	var states [numStates]int64
	var after []byte
	var recipients int
	for {
		var n int
		err := q.db.Update(func(tx *bbolt.Tx) error {
			n = 0
			idx := tx.Bucket(bktRcptIdx)
			msgs := tx.Bucket(bktMsgs)
			c := tx.Bucket(bktRcpts).Cursor()
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(after)
				if k != nil && string(k) == string(after) {
					k, v = c.Next()
				}
			}
			var lastID string
			var m *msgRec
			for ; k != nil && n < countersBuildBatch; k, v = c.Next() {
				id, i, err := parseRcptKey(k)
				if err != nil {
					return err
				}
				r, err := decodeRcpt(v)
				if err != nil {
					return err
				}
				if id != lastID {
					mv := msgs.Get([]byte(id))
					if mv == nil {
						return fmt.Errorf("recipient %s/%d of a missing message", id, i)
					}
					if m, err = decodeMsg(mv); err != nil {
						return err
					}
					lastID = id
				}
				dk := domKey(r.Domain)
				d := doms[dk]
				if d == nil {
					d = &domStats{}
					doms[dk] = d
				}
				d.addState(r.State, 1)
				states[stateIndex(r.State)]++
				if r.State.Open() {
					d.fold(now)
					d.addArrival(binOf(m.Received), 1)
				}
				if err := idx.Put(idxKey(r.Domain, classOf(r.State), id, i), nil); err != nil {
					return err
				}
				after = append(after[:0], k...)
				n++
			}
			return nil
		})
		if err != nil {
			return err
		}
		recipients += n
		if n < countersBuildBatch {
			break
		}
	}
	err = q.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bktDomStats)
		for name, d := range doms {
			if err := b.Put(statsKey(name), d.encode()); err != nil {
				return err
			}
		}
		st := tx.Bucket(bktStats)
		for i, s := range AllStates {
			if err := st.Put([]byte(s), binary.BigEndian.AppendUint64(nil, uint64(states[i]))); err != nil {
				return err
			}
		}
		return st.Put(statsVersionKey, binary.BigEndian.AppendUint64(nil, countersVersion))
	})
	if err != nil {
		return err
	}
	if recipients > 0 {
		q.log.Info("queue: built the per-domain counters and the recipient index", "recipients", recipients, "domains", len(doms))
	}
	return nil
}

// verifyCounters recounts every recipient and compares the result with
// the per-state and per-domain counters, the arrival histograms and the
// recipient index: what `queue check` and the tests use to show that the
// counters kept on every change equal a full recount. It is O(n log n)
// and reads the whole file: never call it from a serving path.
func verifyCounters(tx *bbolt.Tx) []error {
	var errs []error
	add := func(format string, args ...any) {
		if len(errs) < 50 {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	if !countersBuilt(tx) {
		return []error{errors.New("the counters and the recipient index are not built yet (the next start of the daemon builds them)")}
	}
	type want struct {
		n    [numStates]int64
		old  int64
		bins map[int64]int64
	}
	stored := map[string]*domStats{}
	if err := tx.Bucket(bktDomStats).ForEach(func(k, v []byte) error {
		d, err := decodeDomStats(v)
		if err != nil {
			add("counters of domain %q: %v", k, err)
			return nil
		}
		stored[statsDomain(k)] = d
		return nil
	}); err != nil {
		return append(errs, err)
	}
	wants := map[string]*want{}
	var states [numStates]int64
	var recipients int64
	msgs := tx.Bucket(bktMsgs)
	idx := tx.Bucket(bktRcptIdx)
	var lastID string
	var m *msgRec
	err := tx.Bucket(bktRcpts).ForEach(func(k, v []byte) error {
		id, i, err := parseRcptKey(k)
		if err != nil {
			add("recipient key %x: %v", k, err)
			return nil
		}
		r, err := decodeRcpt(v)
		if err != nil {
			add("recipient %s/%d: %v", id, i, err)
			return nil
		}
		if id != lastID {
			m = nil
			if mv := msgs.Get([]byte(id)); mv != nil {
				m, _ = decodeMsg(mv)
			}
			lastID = id
		}
		if m == nil {
			add("recipient %s/%d of a missing message", id, i)
			return nil
		}
		recipients++
		states[stateIndex(r.State)]++
		dk := domKey(r.Domain)
		w := wants[dk]
		if w == nil {
			w = &want{bins: map[int64]int64{}}
			wants[dk] = w
		}
		w.n[stateIndex(r.State)]++
		if r.State.Open() {
			b := binOf(m.Received)
			if d := stored[dk]; d != nil && b < d.oldBefore {
				w.old++
			} else {
				w.bins[b]++
			}
		}
		if idx.Get(idxKey(r.Domain, classOf(r.State), id, i)) == nil {
			add("recipient %s/%d (%s at %q) is missing from the recipient index", id, i, r.State, r.Domain)
		}
		return nil
	})
	if err != nil {
		return append(errs, err)
	}
	// Every index entry names a recipient that is counted above with
	// that domain and class; with as many entries as recipients, the
	// index holds each recipient exactly once.
	var entries int64
	_ = idx.ForEach(func(k, _ []byte) error {
		entries++
		domain, c, id, i, err := parseIdxKey(k)
		if err != nil {
			add("recipient index key %x: %v", k, err)
			return nil
		}
		v := tx.Bucket(bktRcpts).Get(rcptKey(id, i))
		if v == nil {
			add("recipient index names missing recipient %s/%d", id, i)
			return nil
		}
		if r, err := decodeRcpt(v); err == nil && (domKey(r.Domain) != domain || classOf(r.State) != c) {
			add("recipient index has %s/%d under %q class %c; it is %s at %q", id, i, domain, c, r.State, r.Domain)
		}
		return nil
	})
	if entries != recipients {
		add("recipient index has %d entries for %d recipients", entries, recipients)
	}
	st := tx.Bucket(bktStats)
	for i, s := range AllStates {
		var n int64
		if v := st.Get([]byte(s)); len(v) == 8 {
			n = int64(binary.BigEndian.Uint64(v))
		}
		if n != states[i] {
			add("counter of %s recipients is %d, a recount finds %d", s, n, states[i])
		}
	}
	for dk, w := range wants {
		d := stored[dk]
		if d == nil {
			add("domain %q has recipients but no counters", dk)
			continue
		}
		if d.n != w.n {
			add("counters of domain %q are %v (in the order %v), a recount finds %v", dk, d.n, AllStates, w.n)
		}
		got := map[int64]int64{}
		for _, h := range d.bins {
			got[h.bin] = h.n
		}
		if d.old != w.old || !sameBins(got, w.bins) {
			add("arrival histogram of domain %q differs from a recount (old %d, recount %d; %d bins, recount %d)", dk, d.old, w.old, len(got), len(w.bins))
		}
	}
	for dk, d := range stored {
		if wants[dk] == nil && !d.empty() {
			add("domain %q has counters but no recipients", dk)
		}
	}
	return errs
}

func sameBins(a, b map[int64]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
