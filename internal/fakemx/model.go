package fakemx

import (
	"fmt"
	"maps"
	"math"
	"strings"
	"sync"
	"time"
)

// Model is the receiver without the network: every decision the fake MX
// makes (admission under the session cap, outages and the penalty box,
// the rate window, greylisting, per-mailbox limits, scripted replies) and
// the count of everything it did. Each decision takes the time it is
// made at and reads no clock, so the network server (Server, which asks
// at Options.Now) and the virtual-time simulator (internal/sim, which
// asks at its virtual time) share one implementation. Times are relative
// to the start given to NewModel. Safe for concurrent use: each decision
// reads and updates the counters in one step, so two sessions never both
// take the last slot.
type Model struct {
	o     Options
	start time.Time
	rules []rule

	grey, sessions, rate, outage, penalty, mailbox Reply // parsed texts

	mu     sync.Mutex
	active int
	win    int64 // index of the current rate window
	inWin  int   // accepted MAIL FROM in the current window
	first  map[triplet]time.Time
	hits   []int // matches per rule, for Times
	st     Stats
	ids    map[string]int
	// The penalty box: the times of recent limit refusals (at most
	// Penalty.Refusals, oldest first) and the end of the block.
	refusals []time.Time
	boxed    time.Time
	// Per-mailbox windows: lowercased recipient -> window index and
	// the recipients accepted in it.
	boxes map[string]mailboxWindow
}

type triplet struct{ ip, from, rcpt string }

type mailboxWindow struct {
	idx int64
	n   int
}

// NewModel validates the limits and texts of o and returns a receiver
// whose windows, outages and schedule count from start. Zero limits mean
// none; Window defaults to 1s and MailboxWindow to Window.
func NewModel(o Options, start time.Time) (*Model, error) {
	if o.Window <= 0 {
		o.Window = time.Second
	}
	if o.MailboxWindow <= 0 {
		o.MailboxWindow = o.Window
	}
	if o.MaxSessions < 0 || o.RatePerWindow < 0 || o.MailboxRate < 0 || o.Penalty.Refusals < 0 {
		return nil, fmt.Errorf("fakemx: negative limit")
	}
	if o.Penalty.Refusals > 0 && (o.Penalty.Within <= 0 || o.Penalty.Block <= 0) {
		return nil, fmt.Errorf("fakemx: a penalty box needs Within and Block")
	}
	m := &Model{
		o:     o,
		start: start,
		first: map[triplet]time.Time{},
		ids:   map[string]int{},
		boxes: map[string]mailboxWindow{},
		st:    newStats(),
	}
	for _, t := range []struct {
		dst *Reply
		txt string
		def string
	}{
		{&m.grey, o.GreylistText, DefaultGreylistText},
		{&m.sessions, o.SessionsText, DefaultSessionsText},
		{&m.rate, o.RateText, DefaultRateText},
		{&m.outage, o.OutageText, DefaultOutageText},
		{&m.penalty, o.PenaltyText, DefaultPenaltyText},
		{&m.mailbox, o.MailboxText, DefaultMailboxText},
	} {
		if t.txt == "" {
			t.txt = t.def
		}
		var err error
		if *t.dst, err = parseReply(t.txt); err != nil {
			return nil, fmt.Errorf("fakemx: %w", err)
		}
	}
	for i, r := range o.Script {
		cr, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("fakemx: script rule %d: %w", i, err)
		}
		m.rules = append(m.rules, cr)
	}
	m.hits = make([]int, len(m.rules))
	return m, nil
}

// LimitsAt returns the session and rate caps in force at elapsed time d:
// the last Schedule entry whose At has passed, else the base Options.
func (m *Model) LimitsAt(d time.Duration) (maxSessions, rate int) {
	maxSessions, rate = m.o.MaxSessions, m.o.RatePerWindow
	best := time.Duration(-1)
	for _, l := range m.o.Schedule {
		if l.At <= d && l.At >= best {
			best = l.At
			maxSessions, rate = l.MaxSessions, l.RatePerWindow
		}
	}
	return maxSessions, rate
}

// Down reports whether elapsed time d falls in an outage window.
func (m *Model) Down(d time.Duration) bool {
	for _, w := range m.o.Outages {
		if d >= w.Start && d < w.End {
			return true
		}
	}
	return false
}

// Connect decides the greeting of a connection opened at now. It returns
// the refusal to send, or ok=true after counting the session as active;
// the caller then calls Release when the session ends. Inside an outage
// every connection is refused; inside the penalty box too, and each
// refused one keeps the box shut at least Penalty.Extend longer.
func (m *Model) Connect(now time.Time) (refusal Reply, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.Connections++
	d := now.Sub(m.start)
	if m.Down(d) {
		m.st.OutageRefusals++
		return m.refuse(m.outage), false
	}
	if now.Before(m.boxed) {
		m.st.PenaltyRefusals++
		if e := now.Add(m.o.Penalty.Extend); e.After(m.boxed) {
			m.boxed = e
		}
		return m.refuse(m.penalty), false
	}
	k, _ := m.LimitsAt(d)
	if k > 0 && m.active >= k {
		m.st.SessionRefusals++
		return m.limitRefusal(now, m.sessions), false
	}
	m.active++
	m.st.Sessions++
	m.st.MaxConcurrent = max(m.st.MaxConcurrent, m.active)
	return Reply{}, true
}

// Release ends a session that Connect admitted.
func (m *Model) Release() {
	m.mu.Lock()
	m.active--
	m.mu.Unlock()
}

// Mail counts one MAIL FROM at now against the current fixed window, or
// returns the refusal when the window is full or the penalty box is shut.
func (m *Model) Mail(now time.Time) (refusal Reply, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Before(m.boxed) {
		// The box blocks every session, the ones already open too.
		m.st.PenaltyRefusals++
		if e := now.Add(m.o.Penalty.Extend); e.After(m.boxed) {
			m.boxed = e
		}
		return m.refuse(m.penalty), false
	}
	d := now.Sub(m.start)
	_, r := m.LimitsAt(d)
	if idx := int64(d / m.o.Window); idx != m.win {
		m.win, m.inWin = idx, 0
	}
	if r > 0 && m.inWin >= r {
		m.st.RateRefusals++
		return m.limitRefusal(now, m.rate), false
	}
	m.inWin++
	return Reply{}, true
}

// Rcpt decides a RCPT TO naming rcpt at now, from client ip for sender
// from, by the built-in behaviours (no script): the greylist, then the
// recipient's mailbox limit. It records the first attempt of rcpt
// whatever the answer.
func (m *Model) Rcpt(now time.Time, ip, from, rcpt string) (refusal Reply, refused bool) {
	m.noteAttempt(now, rcpt)
	if r, ok := m.greylisted(now, ip, from, rcpt); ok {
		return r, true
	}
	return m.mailboxFull(now, rcpt)
}

// noteAttempt records the first RCPT naming rcpt, whatever the reply.
func (m *Model) noteAttempt(now time.Time, rcpt string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := strings.ToLower(rcpt)
	if rs := m.st.Recipients[key]; rs.FirstAttempt.IsZero() {
		rs.FirstAttempt = now
		m.st.Recipients[key] = rs
	}
}

// greylisted records a RCPT attempt of the triplet and returns the
// greylist reply if the triplet is still inside its window.
func (m *Model) greylisted(now time.Time, ip, from, rcpt string) (Reply, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.o.Greylist <= 0 {
		return Reply{}, false
	}
	key := strings.ToLower(rcpt)
	t := triplet{ip: ip, from: strings.ToLower(from), rcpt: key}
	first, seen := m.first[t]
	if !seen {
		first = now
		m.first[t] = now
	}
	left := m.o.Greylist - now.Sub(first)
	if left <= 0 {
		return Reply{}, false
	}
	rs := m.st.Recipients[key]
	rs.GreylistReplies++
	m.st.Recipients[key] = rs
	m.st.GreylistReplies++
	return m.refuse(m.grey.withDelay(int(math.Ceil(left.Seconds())))), true
}

// mailboxFull counts one accepted recipient against its mailbox's fixed
// window (MailboxRate per MailboxWindow), or refuses it when the window
// is full.
func (m *Model) mailboxFull(now time.Time, rcpt string) (Reply, bool) {
	if m.o.MailboxRate <= 0 {
		return Reply{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	key := strings.ToLower(rcpt)
	idx := int64(now.Sub(m.start) / m.o.MailboxWindow)
	w := m.boxes[key]
	if w.idx != idx {
		w = mailboxWindow{idx: idx}
	}
	if w.n >= m.o.MailboxRate {
		m.st.MailboxRefusals++
		return m.limitRefusal(now, m.mailbox), true
	}
	w.n++
	m.boxes[key] = w
	return Reply{}, false
}

// limitRefusal counts a refusal by a limit (sessions, rate, mailbox)
// towards the penalty box and returns r. Refusals of the box itself, of
// an outage or of greylisting do not count: they are not the sender
// going over a limit. Caller holds m.mu.
func (m *Model) limitRefusal(now time.Time, r Reply) Reply {
	if pb := m.o.Penalty; pb.Refusals > 0 {
		keep := m.refusals[:0]
		for _, t := range m.refusals {
			if now.Sub(t) < pb.Within {
				keep = append(keep, t)
			}
		}
		m.refusals = append(keep, now)
		if len(m.refusals) >= pb.Refusals {
			m.refusals = m.refusals[:0]
			m.boxed = now.Add(pb.Block)
			m.st.PenaltyBlocks++
		}
	}
	return m.refuse(r)
}

// refuse counts a 421 (every 421 sent, whatever the reason) and returns
// r. Caller holds m.mu.
func (m *Model) refuse(r Reply) Reply {
	if r.Code == 421 {
		m.st.Refused421++
	}
	return r
}

// script returns the reply of the first rule of stage matching any of
// subjects, counting the match against the rule's Times.
func (m *Model) script(stage string, subjects ...string) (scripted, bool) {
	if len(m.rules) == 0 {
		return scripted{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, r := range m.rules {
		if r.stage != stage || (r.times > 0 && m.hits[i] >= r.times) {
			continue
		}
		if !matchAny(r.match, subjects) {
			continue
		}
		m.hits[i]++
		m.st.ScriptedReplies++
		m.refuse(r.reply.Reply)
		return r.reply, true
	}
	return scripted{}, false
}

func matchAny(match string, subjects []string) bool {
	if match == "" {
		return true
	}
	for _, sub := range subjects {
		if strings.Contains(strings.ToLower(sub), match) {
			return true
		}
	}
	return false
}

// Deliver records a message accepted at end of DATA at now for rcpts,
// with its Message-ID ("" = none) and whether a lone CR or LF was seen,
// and returns its sequence number (used in the "queued as" text).
func (m *Model) Deliver(now time.Time, rcpts []string, messageID string, bare bool) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.Delivered++
	m.st.DeliveredRcpts += len(rcpts)
	if m.st.FirstDelivery.IsZero() {
		m.st.FirstDelivery = now
	}
	m.st.LastDelivery = now
	if bare {
		m.st.BareLineEndings++
	}
	if messageID == "" {
		m.st.NoMessageID++
	} else {
		if m.ids[messageID] > 0 {
			m.st.Duplicates++
		}
		m.ids[messageID]++
	}
	for _, r := range rcpts {
		key := strings.ToLower(r)
		rs := m.st.Recipients[key]
		if rs.Delivered.IsZero() {
			rs.Delivered = now
		}
		rs.Deliveries++
		m.st.Recipients[key] = rs
	}
	return m.st.Delivered
}

// count updates counters the network server keeps (EHLO names, TLS
// sessions, extra replies) under the model's lock.
func (m *Model) count(f func(st *Stats)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(&m.st)
}

// Stats returns a snapshot; the maps are copies.
func (m *Model) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.clone()
}

// MessageIDs returns Message-ID -> times delivered.
func (m *Model) MessageIDs() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.ids)
}

// Recipient reports the first RCPT attempt and the first delivery of rcpt,
// and how many greylist replies it got. ok is false if it was never seen.
func (m *Model) Recipient(rcpt string) (firstAttempt, delivered time.Time, greylistReplies int, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.st.Recipients[strings.ToLower(rcpt)]
	return r.FirstAttempt, r.Delivered, r.GreylistReplies, ok
}
