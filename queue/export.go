package queue

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"sluice/dsn"
)

// The export stream is JSON lines (docs/operations.md documents it):
//
//	{"type":"header","format":"sluice-queue","version":1}
//	{"type":"message","id":…,"from":…,"received":…,"recipients":[…],"size":N,"body":"<base64>"}
//	{"type":"suppression","addr":…,"reason":…,"at":…}
//	{"type":"destination","name":…,"state":"<base64>"}
//	{"type":"limits","destination":…,"max_concurrency":N,"rate":R}
//	{"type":"end","messages":N,"suppressions":N,"destinations":N,"lost":N}
//
// A message carries its envelope, every recipient with its state and
// attempt history, and its body while a recipient is still open (bodies
// are dropped when the last recipient is final). The end record lets an
// import tell a complete stream from one cut short.
//
// The stream is a function of the queue's content alone: records in key
// order, fields in the order of the structs below (encoding/json keeps
// it), times in UTC, and no export time or path in the header. So an
// export of an imported stream is the same bytes (export → import →
// export round-trips), and two exports can be compared with cmp.
const (
	exportFormat  = "sluice-queue"
	exportVersion = 1
	// maxExportRcpts bounds the recipient count read from an envelope: a
	// larger one is damage, not a message (the inbound limit is far
	// lower).
	maxExportRcpts = 1 << 20
)

// exportHeader opens the stream. Streams of earlier versions carried
// the export's time and source path too: an import ignores them.
type exportHeader struct {
	Type    string `json:"type"`
	Format  string `json:"format"`
	Version int    `json:"version"`
}

type exportAttempt struct {
	At     time.Time `json:"at"`
	Relay  string    `json:"relay,omitempty"`
	Reply  string    `json:"reply,omitempty"`
	Class  string    `json:"class,omitempty"`
	Status string    `json:"status,omitempty"`
}

type exportRcpt struct {
	Addr        string          `json:"addr"`
	State       State           `json:"state"`
	NextAttempt time.Time       `json:"next_attempt,omitzero"`
	Attempts    int             `json:"attempts,omitempty"`
	LastReply   string          `json:"last_reply,omitempty"`
	LastClass   string          `json:"last_class,omitempty"`
	History     []exportAttempt `json:"history,omitempty"`
	// The DSN parameters (RFC 3461) given at RCPT, and the delay notice
	// mark; absent from streams of earlier versions.
	Notify      string `json:"notify,omitempty"`
	ORcpt       string `json:"orcpt,omitempty"`
	DelayWarned bool   `json:"delay_warned,omitempty"`
}

type exportMessage struct {
	Type       string       `json:"type"`
	ID         string       `json:"id"`
	From       string       `json:"from"`
	Received   time.Time    `json:"received"`
	ClientAddr string       `json:"client_addr,omitempty"`
	Helo       string       `json:"helo,omitempty"`
	User       string       `json:"user,omitempty"`
	SMTPUTF8   bool         `json:"smtputf8,omitempty"`
	Done       time.Time    `json:"done,omitzero"`
	Recipients []exportRcpt `json:"recipients"`
	Size       int64        `json:"size"`
	Ret        dsn.Ret      `json:"ret,omitempty"`        // RET given at MAIL
	EnvID      string       `json:"envid,omitempty"`      // ENVID given at MAIL
	RequireTLS bool         `json:"requiretls,omitempty"` // REQUIRETLS given at MAIL (RFC 8689)
	// Body is the message, base64 (standard, padded); absent when every
	// recipient is final.
	Body []byte `json:"body,omitempty"`
}

type exportSuppression struct {
	Type   string    `json:"type"`
	Addr   string    `json:"addr"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

type exportDestination struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	State []byte `json:"state"`
}

// exportLimits are the runtime limits of one destination (`sluice limits
// set`), a record of their own: the queue keeps them inside the
// destination's opaque policy state, and the export takes them out of it
// (LimitsCodec) so that an operator can read and edit them.
type exportLimits struct {
	Type           string  `json:"type"`
	Destination    string  `json:"destination"`
	MaxConcurrency int     `json:"max_concurrency"`
	Rate           float64 `json:"rate"` // messages per second; 0 = no cap
}

// RuntimeLimits are an operator's runtime maxima of one destination, as
// the export stream carries them.
type RuntimeLimits struct {
	MaxConcurrency int
	Rate           float64 // messages per second; 0 = no cap
}

// LimitsCodec reads and writes the runtime limits inside a destination's
// stored state, whose format the policy owns (the queue keeps it opaque).
type LimitsCodec interface {
	// Split returns state without its runtime limits, and the limits
	// (nil when it has none).
	Split(state []byte) (rest []byte, l *RuntimeLimits, err error)
	// Join returns state (nil: the destination has none yet) with l as
	// its runtime limits. A state that already has runtime limits keeps
	// them: set reports false and out is state.
	Join(state []byte, l RuntimeLimits) (out []byte, set bool, err error)
}

type exportEnd struct {
	Type         string `json:"type"`
	Messages     int    `json:"messages"`
	Suppressions int    `json:"suppressions"`
	Destinations int    `json:"destinations"`
	Limits       int    `json:"limits"`
	Lost         int    `json:"lost"`
}

// ExportOptions configures Export.
type ExportOptions struct {
	Path     string // the queue file
	SpoolDir string // "" = <dir of Path>/spool, as Open
	// Tolerant skips what cannot be read (a damaged page, an undecodable
	// record, a missing body) and goes on: the salvage mode. Every loss
	// is in the report. Without it the first problem fails the export.
	Tolerant bool
	// Warn, when set, is told about each problem skipped.
	Warn func(problem string)
	// Limits, when set, takes the runtime limits out of the destination
	// states into limits records; nil: the states are written whole.
	Limits LimitsCodec

	rf *rawFile // an already open file (CheckPath)
}

// LostMessage is a message an export could not carry: the operator may
// have to tell its sender.
type LostMessage struct {
	ID    string
	From  string   // "" when the envelope itself is unreadable
	Rcpts []string // the open recipients that could be read
	Why   string
}

// ExportReport counts what an export wrote and lists what it lost.
type ExportReport struct {
	Messages, Suppressions, Destinations int
	Limits                               int // destinations with runtime limits
	Lost                                 []LostMessage
	Problems                             int // damaged pages and records skipped
}

// Export writes every message of the queue file at o.Path, with the
// suppression list and the destination states, to w as the export
// stream. It reads the file with the checks of a damaged-file reader
// (rawFile: ReadAt with every page checked, never a memory map), so it
// works, and cannot crash, on a file that Open refuses; it takes a shared
// lock, so it refuses while a daemon holds the file. Bodies are read by
// the body accessor's rule (inline value, then spool file).
func Export(w io.Writer, o ExportOptions) (ExportReport, error) {
	var rep ExportReport
	spoolDir := o.SpoolDir
	if spoolDir == "" {
		spoolDir = spoolDirOf(o.Path)
	}
	rf := o.rf
	if rf == nil {
		var err error
		if rf, err = openRaw(o.Path, 0); err != nil {
			return rep, err
		}
		defer rf.Close()
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	problem := func(err error) {
		rep.Problems++
		if o.Warn != nil {
			o.Warn(err.Error())
		}
	}
	var onErr func(error)
	if o.Tolerant {
		onErr = problem
	}
	if err := writeJSONLine(bw, exportHeader{Type: "header", Format: exportFormat, Version: exportVersion}); err != nil {
		return rep, err
	}
	bkts := map[string]rawBucket{}
	for _, name := range [][]byte{bktMsgs, bktRcpts, bktBodies, bktOpen, bktSuppress, bktDest} {
		b, ok, err := rf.bucket(name)
		if err == nil && !ok {
			err = rf.damaged("bucket %q is missing", name)
		}
		if err != nil {
			if !o.Tolerant {
				return rep, err
			}
			problem(err)
			continue
		}
		bkts[string(name)] = b
	}

	// Messages, in key order. In tolerant mode exported remembers them,
	// to skip a key that damage repeats and to name afterwards the open
	// messages whose envelope could not be read.
	exported := map[string]bool{}
	if b, ok := bkts[string(bktMsgs)]; ok {
		err := rf.walk(b, func(k, v []byte, _ uint32) error {
			id := string(k)
			if o.Tolerant {
				if exported[id] {
					problem(rf.damaged("message %q is listed twice", id))
					return nil
				}
				exported[id] = true
			}
			lost, err := exportOne(bw, rf, bkts, spoolDir, id, v)
			if err != nil {
				if !o.Tolerant {
					return fmt.Errorf("message %q: %w", id, err)
				}
				problem(fmt.Errorf("message %q: %w", id, err))
				if lost != nil {
					rep.Lost = append(rep.Lost, *lost)
				}
				return nil
			}
			rep.Messages++
			return nil
		}, onErr)
		if err != nil {
			return rep, err
		}
	}
	if o.Tolerant {
		// Open messages the walk above never reached: their envelope
		// is on a damaged page.
		if b, ok := bkts[string(bktOpen)]; ok {
			_ = rf.walk(b, func(k, _ []byte, _ uint32) error {
				id := string(k)
				if !exported[id] && validID(id) {
					rep.Lost = append(rep.Lost, LostMessage{ID: id, Why: "its envelope is unreadable"})
				}
				return nil
			}, problem)
		}
	}

	if b, ok := bkts[string(bktSuppress)]; ok {
		err := rf.walk(b, func(k, v []byte, _ uint32) error {
			var r suppRec
			err := json.Unmarshal(v, &r)
			if err == nil && suppKey(r.Addr) == "" {
				err = errors.New("no address")
			}
			if err != nil {
				err = rf.damaged("suppression %q: %v", k, err)
				if !o.Tolerant {
					return err
				}
				problem(err)
				return nil
			}
			rep.Suppressions++
			return writeJSONLine(bw, exportSuppression{Type: "suppression", Addr: r.Addr, Reason: r.Reason, At: r.At})
		}, onErr)
		if err != nil {
			return rep, err
		}
	}
	if b, ok := bkts[string(bktDest)]; ok {
		err := rf.walk(b, func(k, v []byte, _ uint32) error {
			state, lim := v, (*RuntimeLimits)(nil)
			if o.Limits != nil {
				rest, l, err := o.Limits.Split(v)
				if err != nil {
					// A state the policy cannot read is carried as it
					// is: the policy ignores it at start-up, as here.
					problem(fmt.Errorf("destination %q: %v (its state is carried as it is)", k, err))
				} else {
					state, lim = rest, l
				}
			}
			rep.Destinations++
			if err := writeJSONLine(bw, exportDestination{Type: "destination", Name: string(k), State: state}); err != nil {
				return err
			}
			if lim == nil {
				return nil
			}
			rep.Limits++
			return writeJSONLine(bw, exportLimits{Type: "limits", Destination: string(k), MaxConcurrency: lim.MaxConcurrency, Rate: lim.Rate})
		}, onErr)
		if err != nil {
			return rep, err
		}
	}
	if err := writeJSONLine(bw, exportEnd{Type: "end", Messages: rep.Messages, Suppressions: rep.Suppressions,
		Destinations: rep.Destinations, Limits: rep.Limits, Lost: len(rep.Lost)}); err != nil {
		return rep, err
	}
	return rep, bw.Flush()
}

// exportOne writes one message. On an error nothing has been written for
// it, and lost describes it when it had open recipients.
func exportOne(w *bufio.Writer, rf *rawFile, bkts map[string]rawBucket, spoolDir, id string, v []byte) (lost *LostMessage, err error) {
	if !validID(id) {
		return nil, fmt.Errorf("malformed message ID %q", id)
	}
	m, err := decodeMsg(v)
	if err == nil && (m.NRcpt <= 0 || m.NRcpt > maxExportRcpts || m.Size < 0) {
		err = fmt.Errorf("envelope with %d recipients and size %d", m.NRcpt, m.Size)
	}
	if err != nil {
		return &LostMessage{ID: id, Why: "its envelope is unreadable"}, err
	}
	em := exportMessage{
		Type: "message", ID: id, From: m.From, Received: m.Received, ClientAddr: m.ClientAddr, Helo: m.Helo,
		User: m.User, SMTPUTF8: m.SMTPUTF8, Done: m.Done, Size: m.Size, Ret: m.Ret, EnvID: m.EnvID,
		RequireTLS: m.RequireTLS,
	}
	lostOf := func(why string) *LostMessage {
		l := &LostMessage{ID: id, From: m.From, Why: why}
		for _, r := range em.Recipients {
			if r.State.Open() {
				l.Rcpts = append(l.Rcpts, r.Addr)
			}
		}
		return l
	}
	rb, ok := bkts[string(bktRcpts)]
	if !ok {
		return lostOf("its recipients are unreadable"), errors.New("no recipients bucket")
	}
	open := false
	for i := 0; i < m.NRcpt; i++ {
		rv, _, found, err := rf.get(rb, rcptKey(id, i))
		if err == nil && !found {
			err = fmt.Errorf("recipient %d is missing", i)
		}
		var r *rcptRec
		if err == nil {
			r, err = decodeRcpt(rv)
		}
		if err != nil {
			return lostOf("a recipient is unreadable"), err
		}
		er := exportRcpt{Addr: r.Addr, State: r.State, NextAttempt: r.NextAttempt, Attempts: r.Attempts,
			LastReply: r.LastReply, LastClass: r.LastClass, Notify: r.Notify.String(), ORcpt: r.ORcpt, DelayWarned: r.DelayWarned}
		if er.State == StateActive {
			// A lease belongs to the process that took it, not to the
			// queue: the recipient is queued, due when it was due (it
			// goes at once after an import), as a restart would make it.
			// Its outcome is unknown, so it may be delivered twice: at
			// least once, never lost.
			er.State = StateQueued
		}
		for _, a := range r.History {
			er.History = append(er.History, exportAttempt(a))
		}
		open = open || r.State.Open()
		em.Recipients = append(em.Recipients, er)
	}
	if !open {
		return nil, writeJSONLine(w, em)
	}
	bb, ok := bkts[string(bktBodies)]
	if !ok {
		return lostOf("its body is unreadable"), errors.New("no bodies bucket")
	}
	head, found, err := rawBody(rf, bb, id)
	if err == nil && !found {
		err = fmt.Errorf("%w: body of %s", ErrNotFound, id)
	}
	if err != nil {
		return lostOf("its body is unreadable"), err
	}
	if !m.Spooled && int64(len(head)) != m.Size {
		// The value or the record is damaged: a body that is not what
		// was accepted is not sent.
		return lostOf("its body does not match its recorded size"), fmt.Errorf("body of %d bytes, the record says %d", len(head), m.Size)
	}
	body, err := openStoredBody(id, head, m.Spooled, m.EightBit, m.Size, filepath.Join(spoolDir, id))
	if err != nil {
		return lostOf("its body is unreadable"), err
	}
	defer body.Close()
	if m.Spooled {
		// A spool file shorter or longer than recorded is damage found
		// now, before the line is begun: a read error half-way could not
		// be taken back.
		st, err := body.f.Stat()
		if err == nil && int64(len(head))+st.Size() != m.Size {
			err = fmt.Errorf("body file is %d bytes, the record says %d", st.Size(), m.Size-int64(len(head)))
		}
		if err != nil {
			return lostOf("its body file is damaged"), err
		}
	}
	return nil, writeMessageStreaming(w, em, body)
}

// writeMessageStreaming writes em with its body base64-encoded from r,
// without holding the body in memory.
func writeMessageStreaming(w *bufio.Writer, em exportMessage, r io.Reader) error {
	em.Body = nil
	b, err := json.Marshal(em)
	if err != nil {
		return err
	}
	w.Write(b[:len(b)-1]) // without the closing brace
	w.WriteString(`,"body":"`)
	enc := base64.NewEncoder(base64.StdEncoding, w)
	if _, err := io.Copy(enc, r); err != nil {
		return fmt.Errorf("read body of %s: %w", em.ID, err)
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err = w.WriteString("\"}\n")
	return err
}

func writeJSONLine(w *bufio.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Write(b)
	return w.WriteByte('\n')
}

// spoolDirOf is the default spool directory of a queue file.
func spoolDirOf(path string) string { return filepath.Join(filepath.Dir(path), "spool") }
