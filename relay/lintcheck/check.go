package lintcheck

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"net/textproto"
	"runtime"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"sluice/config"
	"sluice/internal/escape"
	"sluice/internal/warngate"
	"sluice/lint"
)

// Modes of the content lint (config key lint.mode).
const (
	ModeOff     = "off"
	ModeWarn    = "warn"
	ModeEnforce = "enforce"
)

// Bounds of the daemon's Bulk and Tally: a relay's sender domains are
// its applications', a few hundred at most; past the bounds the least
// recently seen are forgotten.
const (
	BulkDomains  = 10000
	TallyDomains = 1000
)

// Options configure a Checker. They are complete: New fills in nothing
// but the seams (Bulk, Tally, Counters, Logger, Now); the defaults live in
// the config layer (OptionsFrom).
type Options struct {
	Mode string // off | warn | enforce
	// Lint is passed to lint.Check for every message; its Bulk is set
	// per message from the Bulk counter.
	Lint         lint.Options
	BulkPerDay   int           // a sender domain past this many messages a day is a bulk sender
	WarnInterval time.Duration // a finding is logged once per sender domain per interval
	// WarnBudget is the share of the machine's CPU (0 to 1) warn mode
	// may spend on lint; New sets Budget to it. 1 lints every message.
	WarnBudget float64
	// Bulk, Tally, Counters and Budget outlive the Checker: share one
	// of each between the checkers reloads build. nil = the checker's
	// own (Budget: for runtime.GOMAXPROCS CPUs).
	Bulk     *Bulk
	Tally    *Tally
	Counters *Counters
	Budget   *Budget
	Logger   *slog.Logger     // nil = slog.Default()
	Now      func() time.Time // nil = time.Now
}

// OptionsFrom maps the [lint] section onto Options; the caller adds the
// seams.
func OptionsFrom(cfg *config.Config) Options {
	l := cfg.Lint
	o := Options{
		Mode:         l.Mode,
		Lint:         lint.Options{Shorteners: l.Shorteners, MaxBytes: int64(l.MaxBytes)},
		BulkPerDay:   l.BulkPerDay,
		WarnInterval: time.Duration(l.WarnInterval),
		WarnBudget:   float64(l.WarnBudget),
	}
	if len(l.Disabled) > 0 {
		o.Lint.Disabled = map[string]bool{}
		for _, id := range l.Disabled {
			o.Lint.Disabled[id] = true
		}
	}
	return o
}

// Checker lints messages at acceptance. Safe for concurrent use.
type Checker struct {
	mode       string
	lint       lint.Options
	bulkPerDay int
	bulk       *Bulk
	tally      *Tally
	counters   *Counters
	warns      *warngate.Gate
	budget     *Budget
	firsts     *warngate.Gate // the first message of each sender domain per WarnInterval is linted
	log        *slog.Logger
	now        func() time.Time
}

// New checks o and builds a Checker.
func New(o Options) (*Checker, error) {
	switch o.Mode {
	case ModeOff, ModeWarn, ModeEnforce:
	default:
		return nil, fmt.Errorf("lintcheck: unknown mode %q", o.Mode)
	}
	if o.BulkPerDay < 1 || o.WarnInterval <= 0 || o.Lint.MaxBytes <= 0 {
		return nil, errors.New("lintcheck: BulkPerDay, WarnInterval and Lint.MaxBytes must be positive")
	}
	if o.WarnBudget < 0 || o.WarnBudget > 1 {
		return nil, fmt.Errorf("lintcheck: WarnBudget %v is not a share from 0 to 1", o.WarnBudget)
	}
	if o.Bulk == nil {
		o.Bulk = NewBulk(BulkDomains)
	}
	if o.Tally == nil {
		o.Tally = NewTally(TallyDomains)
	}
	if o.Counters == nil {
		o.Counters = NewCounters()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Budget == nil {
		o.Budget = NewBudget(runtime.GOMAXPROCS(0), o.WarnBudget, o.Now())
	} else {
		o.Budget.Set(o.WarnBudget, o.Now())
	}
	return &Checker{mode: o.Mode, lint: o.Lint, bulkPerDay: o.BulkPerDay, bulk: o.Bulk, tally: o.Tally, counters: o.Counters,
		warns: warngate.New(o.WarnInterval), budget: o.Budget, firsts: warngate.New(o.WarnInterval), log: o.Logger, now: o.Now}, nil
}

// Mode is the mode in force.
func (c *Checker) Mode() string { return c.mode }

// Input is one message at the end of DATA.
type Input struct {
	MailFrom string // envelope sender; "" for the null sender
	// Header is the message's header section: the sender domain is its
	// From domain (the envelope's when it has none).
	Header []byte
	// Open returns a reader over the whole message, spooled: lint reads
	// it once, at most Lint.MaxBytes of it.
	Open func() (io.ReadCloser, error)
}

// Check lints the message. In warn mode it lints within the CPU budget:
// a message is skipped (counted as such) when the budget is spent,
// unless it is its sender domain's first in WarnInterval. Every finding
// of a linted message is counted (Counters, Tally) and logged at most
// once per sender domain per finding per WarnInterval. In enforce mode a block-level finding
// returns a bare *smtp.SMTPError 550 5.7.1 whose text is the finding's
// fix: the caller refuses the message and queues nothing. A message lint
// could not read is accepted (the failure is logged): lint is advice
// about content and never the reason a message is lost.
func (c *Checker) Check(_ context.Context, in Input) error {
	if c.mode == ModeOff {
		return nil
	}
	now := c.now()
	domain := senderDomain(in.Header, in.MailFrom)
	lo := c.lint
	// Every message counts towards the bulk rule, linted or not: it is
	// about volume.
	lo.Bulk = c.bulk.Add(domain, now) > c.bulkPerDay
	warn := c.mode == ModeWarn && !c.budget.All()
	if warn {
		first, _ := c.firsts.Allow(domain, now)
		if !c.budget.Allow(now, first) {
			c.counters.skipped.Add(1)
			return nil
		}
	}
	found, err := c.run(in.Open, lo)
	if warn {
		end := c.now()
		c.budget.Charge(end.Sub(now), end)
	}
	c.counters.checked.Add(1)
	c.bulk.Linted(domain, now)
	if err != nil {
		c.log.Error("lint: message not read; accepted unchecked", "sender_domain", escape.Text(domain), "err", err)
		return nil
	}
	// One count per finding ID per message: the metric and the tally
	// say how many messages carry each finding.
	seen := make([]Seen, 0, len(found))
	var block *lint.Finding
	for i, f := range found {
		if containsID(seen, f.ID) {
			continue
		}
		sev := f.Severity.String()
		c.counters.add(f.ID, sev)
		seen = append(seen, Seen{ID: f.ID, Severity: sev, Evidence: f.Evidence, Fix: f.Fix})
		if f.Severity == lint.Block && block == nil {
			block = &found[i]
		}
	}
	c.tally.Add(domain, seen, now)
	refuse := c.mode == ModeEnforce && block != nil
	for _, f := range seen {
		ok, skipped := c.warns.Allow(domain+"\x00"+f.ID, now)
		if !ok {
			continue
		}
		lvl := slog.LevelWarn
		if f.Severity == lint.Info.String() {
			lvl = slog.LevelInfo
		}
		c.log.Log(context.Background(), lvl, "lint: finding", "mode", c.mode, "sender_domain", escape.Text(domain), "id", f.ID,
			"severity", f.Severity, "evidence", escape.Text(f.Evidence), "fix", f.Fix, "refused", refuse, "same_not_logged", skipped)
	}
	if !refuse {
		return nil
	}
	c.log.Warn("lint: rejected", "sender_domain", escape.Text(domain), "id", block.ID, "evidence", escape.Text(block.Evidence), "fix", block.Fix)
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: replyText(block)}
}

func (c *Checker) run(open func() (io.ReadCloser, error), lo lint.Options) ([]lint.Finding, error) {
	r, err := open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return lint.Check(r, lo)
}

func containsID(s []Seen, id string) bool {
	for _, f := range s {
		if f.ID == id {
			return true
		}
	}
	return false
}

// replyText is the text of the 550 for a block finding: its fix and its
// ID, in printable ASCII (an SMTP reply is ASCII, RFC 5321 §4.2, unless
// SMTPUTF8 was negotiated). Only our own words: the evidence, which
// quotes the client's message, stays in the log.
func replyText(f *lint.Finding) string {
	s := strings.ReplaceAll(f.Fix, "§", "section ")
	var b strings.Builder
	for _, r := range s {
		if r >= 0x20 && r < 0x7f {
			b.WriteRune(r)
		} else {
			b.WriteByte('?')
		}
	}
	return clip(b.String(), 400) + " [lint " + f.ID + "]"
}

// maxDomain bounds a sender domain kept as a map key (RFC 1035: 255).
const maxDomain = 255

// senderDomain is the domain findings are counted under: the From
// header's (what receivers and their bulk-sender rules judge), else the
// envelope sender's, else "-".
func senderDomain(header []byte, mailFrom string) string {
	d := fromDomain(header)
	if d == "" {
		if i := strings.LastIndexByte(mailFrom, '@'); i >= 0 {
			d = mailFrom[i+1:]
		}
	}
	d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
	if d == "" {
		return "-"
	}
	return clip(d, maxDomain)
}

// fromDomain is the domain of the first address of the first From field
// of header; "" when there is none or it does not parse.
// maxFromField is the longest From field fromDomain parses (lint's own
// cap on From, 2 KiB).
const maxFromField = 2 << 10

func fromDomain(header []byte) string {
	tr := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(header), strings.NewReader("\r\n\r\n"))))
	h, err := tr.ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return ""
	}
	v := h.Get("From")
	if v == "" || len(v) > maxFromField {
		// A From past lint's own cap is from-malformed there; here the
		// envelope's domain stands in, since net/mail spends megabytes
		// on a hostile display name of a few hundred KB, and this runs
		// on every message, linted or not.
		return ""
	}
	list, err := (&mail.AddressParser{}).ParseList(v)
	if err != nil || len(list) == 0 {
		return ""
	}
	a := list[0].Address
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return a[i+1:]
	}
	return ""
}
