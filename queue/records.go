package queue

import (
	"encoding/json"
	"fmt"
	"time"

	"sluice/dsn"
)

// msgRec is the stored form of a message's envelope. It is kept apart from
// the recipients so that a recipient update rewrites one small record,
// not the whole message. It is stored in the compact binary form of
// codec.go; the JSON tags read the records of earlier versions.
type msgRec struct {
	From       string    `json:"f"`
	Received   time.Time `json:"r"`
	Size       int64     `json:"s"`
	ClientAddr string    `json:"c,omitempty"`
	Helo       string    `json:"h,omitempty"`
	User       string    `json:"u,omitempty"`
	SMTPUTF8   bool      `json:"8,omitempty"`
	// Spooled: the body is the bodies bucket's value followed by the
	// file spool/<id>.
	Spooled  bool      `json:"sp,omitempty"`
	EightBit bool      `json:"x8,omitempty"` // the body has a byte >= 0x80 (set for spooled bodies)
	NRcpt    int       `json:"n"`
	Open     int       `json:"o"` // recipients in an open state
	Done     time.Time `json:"d,omitzero"`
	// The DSN parameters given at MAIL (RFC 3461 §4.3, §4.4).
	Ret   dsn.Ret `json:"rt,omitempty"`
	EnvID string  `json:"ev,omitempty"`
	// REQUIRETLS given at MAIL (RFC 8689 §4.1).
	RequireTLS bool `json:"rt2,omitempty"`
	// TLSReport: a TLS-RPT report queued by sluice itself (RFC 8460);
	// its delivery is left out of the TLS-RPT tally.
	TLSReport bool `json:"tr,omitempty"`
}

type attemptRec struct {
	At     time.Time `json:"t"`
	Relay  string    `json:"h,omitempty"`
	Reply  string    `json:"r,omitempty"`
	Class  string    `json:"c,omitempty"`
	Status string    `json:"s,omitempty"`
}

type rcptRec struct {
	Addr        string    `json:"a"`
	Domain      string    `json:"d"`
	State       State     `json:"s"`
	NextAttempt time.Time `json:"n,omitzero"`
	// LeaseUntil is the deadline of the lease while StateActive (zero:
	// none); the active index is keyed by it.
	LeaseUntil time.Time    `json:"l,omitzero"`
	Attempts   int          `json:"k,omitempty"`
	LastReply  string       `json:"r,omitempty"`
	LastClass  string       `json:"c,omitempty"`
	History    []attemptRec `json:"h,omitempty"`
	// The DSN parameters given at RCPT (RFC 3461 §4.1, §4.2).
	Notify dsn.Notify `json:"nt,omitempty"`
	ORcpt  string     `json:"or,omitempty"`
	// DelayWarned: the delay notice was sent (once per recipient).
	DelayWarned bool `json:"dw,omitempty"`
}

type suppRec struct {
	Addr   string    `json:"a"`
	Reason string    `json:"r,omitempty"`
	At     time.Time `json:"t"`
}

func decodeMsg(b []byte) (*msgRec, error) {
	if len(b) > 0 && b[0] == recV1 {
		m, err := decodeMsgV1(b)
		if err != nil {
			return nil, fmt.Errorf("queue: decode message record: %w", err)
		}
		return m, nil
	}
	var m msgRec
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("queue: decode message record: %w", err)
	}
	return &m, nil
}

func decodeRcpt(b []byte) (*rcptRec, error) {
	var r *rcptRec
	if len(b) > 0 && b[0] == recV1 {
		var err error
		if r, err = decodeRcptV1(b); err != nil {
			return nil, fmt.Errorf("queue: decode recipient record: %w", err)
		}
	} else {
		r = &rcptRec{}
		if err := json.Unmarshal(b, r); err != nil {
			return nil, fmt.Errorf("queue: decode recipient record: %w", err)
		}
	}
	if !r.State.Valid() {
		return nil, fmt.Errorf("queue: decode recipient record: bad state %q", r.State)
	}
	if !r.Notify.Valid() {
		return nil, fmt.Errorf("queue: decode recipient record: bad NOTIFY %d", r.Notify)
	}
	return r, nil
}

func (r *rcptRec) public() Recipient {
	out := Recipient{
		Addr: r.Addr, Domain: r.Domain, State: r.State, NextAttempt: r.NextAttempt,
		Attempts: r.Attempts, LastReply: r.LastReply, LastClass: r.LastClass,
		DSN: dsn.Rcpt{Notify: r.Notify, ORcpt: r.ORcpt}, DelayWarned: r.DelayWarned,
	}
	if len(r.History) > 0 {
		out.History = make([]Attempt, len(r.History))
		for i, a := range r.History {
			out.History[i] = Attempt(a)
		}
	}
	return out
}

func (m *msgRec) public(id string, rcpts []Recipient) Message {
	return Message{
		ID: id, From: m.From, Received: m.Received, Size: m.Size,
		ClientAddr: m.ClientAddr, Helo: m.Helo, User: m.User, SMTPUTF8: m.SMTPUTF8, RequireTLS: m.RequireTLS,
		Recipients: rcpts, Done: m.Done, DSN: dsn.Envelope{Ret: m.Ret, EnvID: m.EnvID},
	}
}
