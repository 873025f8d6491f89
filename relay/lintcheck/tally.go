package lintcheck

import (
	"cmp"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"sluice/internal/lru"
)

// Bounds of the tally: it lives in memory and the senders are the
// clients' to choose.
const (
	maxIDsPerDomain = 64  // more than lint has findings
	maxEvidence     = 200 // bytes of the last evidence kept per finding
)

// Seen is one finding of one message, as the tally keeps it.
type Seen struct {
	ID       string
	Severity string // info | warn | block
	Evidence string // client-supplied: escaped on output, never here
	Fix      string
}

// Tally is the content lint findings of each sender domain over the last
// day, per finding ID, in hourly buckets: what the dashboard and `sluice
// domains` show, so that an operator can connect a spike of 421s to a
// campaign's content. It remembers at most a fixed number of domains,
// evicting the least recently seen. Safe for concurrent use; the daemon
// owns one, across reloads.
type Tally struct {
	mu  sync.Mutex
	max int
	m   *lru.Map[string, *domainTally]
}

type domainTally struct {
	ids map[string]*idTally
}

type idTally struct {
	severity string
	h        hours
	evidence string // the last one seen, clipped
	fix      string
	last     time.Time
}

// NewTally returns a tally of at most maxDomains domains (at least 1).
func NewTally(maxDomains int) *Tally {
	return &Tally{max: max(maxDomains, 1), m: lru.New[string, *domainTally]()}
}

// Add counts the findings of one message of domain at now.
func (t *Tally) Add(domain string, found []Seen, now time.Time) {
	if len(found) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	d, ok := t.m.Get(domain)
	if !ok {
		makeRoom(t.m, t.max, now)
		d = &domainTally{ids: map[string]*idTally{}}
	}
	t.m.Put(domain, d, now)
	for _, f := range found {
		it, ok := d.ids[f.ID]
		if !ok {
			if len(d.ids) >= maxIDsPerDomain {
				continue
			}
			it = &idTally{}
			d.ids[f.ID] = it
		}
		it.severity, it.fix, it.last = f.Severity, f.Fix, now
		it.evidence = clip(f.Evidence, maxEvidence)
		it.h.add(now)
	}
}

// Sender is one sender domain's findings over the last day (the JSON of
// the admin API: field names only ever grow).
type Sender struct {
	Domain string `json:"domain"`
	// Messages is the number of messages from the domain seen over the
	// last day, accepted or refused (0 when the bulk counter has
	// forgotten it).
	Messages int `json:"messages"`
	// Linted is how many of them were linted: warn mode lints a sample
	// when the relay is busy (lint.warn_budget), so findings are out of
	// Linted, not Messages.
	Linted int `json:"linted"`
	// Total is the number of findings over the last day.
	Total    int             `json:"findings"`
	Findings []SenderFinding `json:"by_id"`
}

// SenderFinding is one finding ID of a sender domain over the last day.
type SenderFinding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Count    int    `json:"count"`
	// Hourly is the count per UTC hour, oldest first, the current hour
	// last (Report.Start is the first hour's start).
	Hourly []int     `json:"hourly"`
	Last   time.Time `json:"last"`
	// Evidence is the last message's (client-supplied: escape it), the
	// admin API only; the public dashboard leaves it out.
	Evidence string `json:"evidence,omitempty"`
	Fix      string `json:"fix,omitempty"`
}

// Report is the tally as the admin API serves it.
type Report struct {
	Mode string `json:"mode"` // lint.mode in force
	// Start is the start of the first hourly bucket of every Hourly.
	Start   time.Time `json:"start"`
	Senders []Sender  `json:"senders"`
	// More is the number of sender domains with findings left out
	// beyond the limit.
	More int `json:"more,omitempty"`
}

// Report returns the domains with findings in the last day, the most
// findings first, at most limit of them (0 = all), with their message
// counts from bulk (nil = none).
func (t *Tally) Report(now time.Time, bulk *Bulk, limit int) Report {
	t.mu.Lock()
	var out []Sender
	for dom, d := range t.m.All() {
		s := Sender{Domain: dom}
		for id, it := range d.ids {
			n := it.h.total(now)
			if n == 0 {
				continue
			}
			s.Total += n
			s.Findings = append(s.Findings, SenderFinding{ID: id, Severity: it.severity, Count: n, Hourly: it.h.series(now),
				Last: it.last, Evidence: it.evidence, Fix: it.fix})
		}
		if s.Total > 0 {
			out = append(out, s)
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Sender) int {
		return cmp.Or(cmp.Compare(b.Total, a.Total), cmp.Compare(a.Domain, b.Domain))
	})
	r := Report{Start: seriesStart(now), Senders: []Sender{}}
	if limit > 0 && len(out) > limit {
		r.More = len(out) - limit
		out = out[:limit]
	}
	for i := range out {
		slices.SortFunc(out[i].Findings, func(a, b SenderFinding) int {
			return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.ID, b.ID))
		})
		if bulk != nil {
			out[i].Messages, out[i].Linted = bulk.Counts(out[i].Domain, now)
		}
	}
	r.Senders = append(r.Senders, out...)
	return r
}

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
