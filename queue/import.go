package queue

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"sluice/dsn"
)

// ImportReport counts what Import stored.
type ImportReport struct {
	Messages int // messages stored
	// Duplicates are the messages refused because their ID is already in
	// the queue (or earlier in the stream): they are left as they were.
	Duplicates   int
	DuplicateIDs []string // the first maxDuplicateIDs of them
	Suppressions int
	Destinations int
	// Limits counts the runtime limits set; LimitsKept those not set
	// because the queue has its own for that destination.
	Limits, LimitsKept int
}

// maxDuplicateIDs bounds the IDs an ImportReport lists.
const maxDuplicateIDs = 100

// ImportOptions configure ImportWith.
type ImportOptions struct {
	// Limits sets the runtime limits of limits records into the
	// destination states. nil: a stream with limits records is refused
	// (they would be dropped silently).
	Limits LimitsCodec
}

// importBatch bounds the messages (and inline bytes) of one import
// transaction: one fsync for many messages, without one huge commit.
const (
	importBatch      = 256
	importBatchBytes = 16 << 20
)

// errIncomplete: the stream ended before its end record.
var errIncomplete = errors.New("queue: import: the stream ended before its end record (cut short?)")

// Import reads an export stream (see Export) and stores its messages
// under their IDs, with their envelopes, recipient states and histories,
// and their bodies (above the inline limit as spool files, fsynced before
// the commit that names them, as Enqueue does). A recipient that was in
// flight (active) when exported is due now; the others keep their state
// and next attempt. A message whose ID is already in the queue is left
// alone: it is refused, counted and named as a duplicate, and the others
// are stored (the caller reports the refusal: an import run again after
// a failure refuses what the first run stored, and stores the rest).
// Suppressions are added; a destination state is added only where the
// queue has none, and runtime limits only where the destination has none.
// Messages are committed in batches as they come: after an error, what
// was committed stays.
func (q *Queue) Import(r io.Reader) (ImportReport, error) {
	return q.ImportWith(r, ImportOptions{})
}

// ImportWith is Import with options.
func (q *Queue) ImportWith(r io.Reader, o ImportOptions) (ImportReport, error) {
	var rep ImportReport
	br := bufio.NewReaderSize(r, 1<<20)
	line, err := readLine(br)
	if err != nil {
		return rep, fmt.Errorf("queue: import: reading the header: %w", err)
	}
	var h exportHeader
	if err := json.Unmarshal(line, &h); err != nil || h.Type != "header" || h.Format != exportFormat {
		return rep, fmt.Errorf("queue: import: not a sluice queue export (first line %.60q)", line)
	}
	if h.Version != exportVersion {
		return rep, fmt.Errorf("queue: import: export format version %d, this sluice reads %d", h.Version, exportVersion)
	}
	var (
		batch      []*importMsg
		batchBytes int
		supps      []exportSuppression
		dests      []exportDestination
		lims       []exportLimits
	)
	flush := func() error {
		if len(batch)+len(supps)+len(dests)+len(lims) == 0 {
			return nil
		}
		res, err := q.importBatch(batch, supps, dests, lims, o.Limits)
		rep.Messages += res.stored
		rep.Duplicates += len(res.dups)
		for _, id := range res.dups {
			if len(rep.DuplicateIDs) < maxDuplicateIDs {
				rep.DuplicateIDs = append(rep.DuplicateIDs, id)
			}
		}
		rep.Limits += res.limits
		rep.LimitsKept += res.limitsKept
		batch, batchBytes, supps, dests, lims = nil, 0, nil, nil, nil
		return err
	}
	for lineNo := 2; ; lineNo++ {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) {
			if ferr := flush(); ferr != nil {
				return rep, ferr
			}
			return rep, errIncomplete
		}
		if err != nil {
			return rep, fmt.Errorf("queue: import: line %d: %w", lineNo, err)
		}
		var kind struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(line, &kind); err != nil {
			return rep, fmt.Errorf("queue: import: line %d: %w", lineNo, err)
		}
		switch kind.Type {
		case "message":
			var em exportMessage
			if err := json.Unmarshal(line, &em); err != nil {
				return rep, fmt.Errorf("queue: import: line %d: %w", lineNo, err)
			}
			im, err := q.prepareImport(&em)
			if err != nil {
				return rep, fmt.Errorf("queue: import: line %d: message %s: %w", lineNo, em.ID, err)
			}
			batch = append(batch, im)
			batchBytes += len(im.head)
		case "suppression":
			var es exportSuppression
			if err := json.Unmarshal(line, &es); err != nil {
				return rep, fmt.Errorf("queue: import: line %d: %w", lineNo, err)
			}
			if suppKey(es.Addr) == "" {
				return rep, fmt.Errorf("queue: import: line %d: suppression without an address", lineNo)
			}
			supps = append(supps, es)
			rep.Suppressions++
		case "destination":
			var ed exportDestination
			if err := json.Unmarshal(line, &ed); err != nil {
				return rep, fmt.Errorf("queue: import: line %d: %w", lineNo, err)
			}
			if ed.Name == "" {
				return rep, fmt.Errorf("queue: import: line %d: destination without a name", lineNo)
			}
			dests = append(dests, ed)
			rep.Destinations++
		case "limits":
			var el exportLimits
			if err := json.Unmarshal(line, &el); err != nil {
				return rep, fmt.Errorf("queue: import: line %d: %w", lineNo, err)
			}
			if el.Destination == "" || el.MaxConcurrency < 1 || el.Rate < 0 {
				return rep, fmt.Errorf("queue: import: line %d: limits of %q: want a destination, max_concurrency >= 1 and rate >= 0", lineNo, el.Destination)
			}
			if o.Limits == nil {
				return rep, fmt.Errorf("queue: import: line %d: runtime limits of %q, and no way to store them", lineNo, el.Destination)
			}
			lims = append(lims, el)
		case "end":
			if err := flush(); err != nil {
				return rep, err
			}
			var ee exportEnd
			if err := json.Unmarshal(line, &ee); err != nil {
				return rep, fmt.Errorf("queue: import: line %d: %w", lineNo, err)
			}
			if got := rep.Messages + rep.Duplicates; got != ee.Messages {
				return rep, fmt.Errorf("queue: import: the stream announces %d messages, %d were read", ee.Messages, got)
			}
			return rep, nil
		default:
			return rep, fmt.Errorf("queue: import: line %d: unknown record type %q", lineNo, kind.Type)
		}
		if len(batch)+len(supps)+len(dests)+len(lims) >= importBatch || batchBytes >= importBatchBytes {
			if err := flush(); err != nil {
				return rep, err
			}
		}
	}
}

// readLine reads one line of any length, without its newline.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadBytes('\n')
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return line[:len(line)-1], nil
}

// importMsg is a message ready for its import transaction: the body is
// inline (head) or already published as a spool file.
type importMsg struct {
	em      *exportMessage
	head    []byte
	spooled bool
	eight   bool
}

// prepareImport validates em and, for a body above the inline limit,
// writes and publishes its spool file under em.ID.
func (q *Queue) prepareImport(em *exportMessage) (*importMsg, error) {
	if !validID(em.ID) {
		return nil, fmt.Errorf("malformed ID %q", em.ID)
	}
	if len(em.Recipients) == 0 {
		return nil, errors.New("no recipients")
	}
	open := false
	for i, r := range em.Recipients {
		if !r.State.Valid() {
			return nil, fmt.Errorf("recipient %d: unknown state %q", i, r.State)
		}
		if r.Notify != "" {
			if _, err := dsn.ParseNotify(strings.Split(r.Notify, ",")); err != nil {
				return nil, fmt.Errorf("recipient %d: NOTIFY %q: %w", i, r.Notify, err)
			}
		}
		open = open || r.State.Open()
	}
	if em.Ret != "" && em.Ret != dsn.RetFull && em.Ret != dsn.RetHdrs {
		return nil, fmt.Errorf("RET %q", em.Ret)
	}
	im := &importMsg{em: em}
	if !open {
		return im, nil // finished: no body to keep
	}
	if em.Body == nil {
		return nil, errors.New("open recipients but no body")
	}
	if int64(len(em.Body)) != em.Size {
		return nil, fmt.Errorf("body of %d bytes, size says %d", len(em.Body), em.Size)
	}
	im.eight = has8Bit(em.Body)
	if int64(len(em.Body)) <= q.inlineMax() {
		im.head = em.Body
		return im, nil
	}
	if _, err := q.Get(em.ID); err == nil {
		return im, nil // a duplicate: its spool file is the queue's own
	}
	s := q.NewSpool()
	defer s.Discard()
	if _, err := s.Write(em.Body); err != nil {
		return nil, err
	}
	if !s.Spilled() {
		im.head = em.Body
		return im, nil
	}
	if err := s.publish(em.ID); err != nil {
		return nil, err
	}
	im.spooled = true
	return im, nil
}

// batchResult is what one import transaction stored.
type batchResult struct {
	stored             int
	dups               []string
	limits, limitsKept int
}

// importBatch stores a batch in one transaction. Limits are set after the
// destination states of the same batch, which an export writes first.
func (q *Queue) importBatch(batch []*importMsg, supps []exportSuppression, dests []exportDestination, lims []exportLimits, codec LimitsCodec) (res batchResult, err error) {
	keys := make([]string, 0, len(supps))
	err = q.write(context.Background(), func(w *wtx) error {
		res, keys = batchResult{}, keys[:0]
		for _, im := range batch {
			ok, err := importTx(w, im)
			if err != nil {
				return fmt.Errorf("queue: import: message %s: %w", im.em.ID, err)
			}
			if ok {
				res.stored++
			} else {
				res.dups = append(res.dups, im.em.ID)
			}
		}
		for _, es := range supps {
			v, err := json.Marshal(suppRec{Addr: es.Addr, Reason: es.Reason, At: es.At})
			if err != nil {
				return err
			}
			k := suppKey(es.Addr)
			if err := w.b(bktSuppress).Put([]byte(k), v); err != nil {
				return err
			}
			keys = append(keys, k)
		}
		for _, ed := range dests {
			b := w.b(bktDest)
			if b.Get([]byte(ed.Name)) != nil {
				continue // the queue's own state wins
			}
			v := ed.State
			if v == nil {
				v = []byte{}
			}
			if err := b.Put([]byte(ed.Name), v); err != nil {
				return err
			}
		}
		for _, el := range lims {
			b := w.b(bktDest)
			cur := b.Get([]byte(el.Destination))
			v, set, err := codec.Join(cur, RuntimeLimits{MaxConcurrency: el.MaxConcurrency, Rate: el.Rate})
			if err != nil {
				return fmt.Errorf("queue: import: limits of %q: %w", el.Destination, err)
			}
			if !set {
				res.limitsKept++
				continue
			}
			res.limits++
			if err := b.Put([]byte(el.Destination), v); err != nil {
				return err
			}
		}
		return nil
	}, func() {
		q.suppMu.Lock()
		for _, k := range keys {
			q.supp[k] = struct{}{}
		}
		q.suppMu.Unlock()
	})
	if err != nil {
		// A body file only the failed batch named stays behind: the
		// next start-up sweep removes it.
		return batchResult{}, err
	}
	return res, nil
}

// importTx stores one message inside w; false when its ID is taken.
func importTx(w *wtx, im *importMsg) (bool, error) {
	em := im.em
	// Taken in the file, or earlier in this transaction (the record is
	// written at the end of it: w.msgs holds it until then).
	if _, pending := w.msgs[em.ID]; pending || w.b(bktMsgs).Get([]byte(em.ID)) != nil {
		return false, nil
	}
	rec := &msgRec{
		From: em.From, Received: em.Received, Size: em.Size, ClientAddr: em.ClientAddr, Helo: em.Helo,
		User: em.User, SMTPUTF8: em.SMTPUTF8, Spooled: im.spooled, EightBit: im.eight, NRcpt: len(em.Recipients),
		Ret: em.Ret, EnvID: em.EnvID, RequireTLS: em.RequireTLS,
	}
	w.msgs[em.ID], w.dirty[em.ID] = rec, true
	for i, er := range em.Recipients {
		r := &rcptRec{Addr: er.Addr, Domain: domainOf(er.Addr), NextAttempt: er.NextAttempt, Attempts: er.Attempts,
			LastReply: er.LastReply, LastClass: er.LastClass, ORcpt: er.ORcpt, DelayWarned: er.DelayWarned}
		if er.Notify != "" {
			// Checked when the stream was read (checkMessage).
			r.Notify, _ = dsn.ParseNotify(strings.Split(er.Notify, ","))
		}
		for _, a := range er.History {
			r.History = append(r.History, attemptRec(a))
		}
		to, next := er.State, er.NextAttempt
		if to == StateActive {
			// In flight when exported: its outcome is unknown, so it is
			// tried again (at least once), now.
			to, next = StateQueued, w.now
		}
		if err := w.transition(em.ID, i, r, to, next); err != nil {
			return false, err
		}
	}
	if rec.Open > 0 {
		head := im.head
		if head == nil {
			head = []byte{} // spooled: the whole body is in its file
		}
		if err := w.putBody(em.ID, head); err != nil {
			return false, err
		}
		return true, nil
	}
	// Every recipient final: a finished message, kept for its retention.
	rec.Spooled, rec.Done = false, em.Done
	if rec.Done.IsZero() {
		rec.Done = w.now
	}
	return true, w.b(bktDone).Put(doneKey(rec.Done, em.ID), nil)
}
