// Package lint tells a sender, before a receiver does, which content habits
// of a message earn deferrals and blocks: link shorteners, link text that
// names another domain than its target, a From display name that claims to
// be someone else, image-only HTML, HTML without a matching text part, bulk
// mail without one-click unsubscribe (RFC 8058), missing or malformed
// identity headers (RFC 5322 §3.6), a shouting Subject and 8-bit text
// without a charset. SpamAssassin's receiving-side rules are the reference
// for the heuristics (see lint/spamassassin_test.go).
//
// Check streams the message: it reads at most Options.MaxBytes of it,
// decodes only text parts, discards every other part without decoding it,
// and bounds MIME nesting and the number of parts, so its memory does not
// grow with the size of an attachment. Check and IDs are safe for
// concurrent use.
package lint

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// Severity ranks a finding. Only Block findings may refuse a message (in
// the relay's enforce mode); Warn and Info are advice.
type Severity int

const (
	Info Severity = iota
	Warn
	Block
)

func (s Severity) String() string {
	switch s {
	case Info:
		return "info"
	case Warn:
		return "warn"
	case Block:
		return "block"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// MarshalText writes the severity's name, so JSON shows "block", not 2.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity's name.
func (s *Severity) UnmarshalText(b []byte) error {
	switch string(b) {
	case "info":
		*s = Info
	case "warn":
		*s = Warn
	case "block":
		*s = Block
	default:
		return fmt.Errorf("lint: unknown severity %q", b)
	}
	return nil
}

// Finding is one content problem of a message.
type Finding struct {
	// ID is stable kebab-case, one of IDs(): config, metrics and logs
	// key on it.
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	// Evidence names the header, part or URL at fault. It quotes the
	// client's message as it is: callers escape it on output.
	Evidence string `json:"evidence"`
	// Fix is one sentence telling the sender what to change.
	Fix string `json:"fix"`
}

// Options tune Check. The zero value checks everything with the built-in
// shortener list.
type Options struct {
	// Shorteners are extra shortener domains, added to the built-in
	// list; a link to the domain or any subdomain of it matches.
	Shorteners []string
	// Disabled switches finding IDs off.
	Disabled map[string]bool
	// Bulk says the sender domain is over lint.bulk_per_day, which makes
	// a missing one-click unsubscribe a finding.
	Bulk bool
	// MaxBytes caps the bytes of the message Check reads (0 means
	// DefaultMaxBytes). Check never reads past it and never drains the
	// rest; what lies beyond is not examined.
	MaxBytes int64
}

// DefaultMaxBytes is the read cap when Options.MaxBytes is 0. Gmail clips
// HTML at 102 KB and receivers' content filters stop scanning around
// 500 KB (spamc's default), so the heuristics that matter sit well inside
// the first megabyte; a large attachment after it is not read at all.
const DefaultMaxBytes = 1 << 20

// Limits on the MIME walk: hostile nesting or a flood of parts costs a
// bounded amount of work and memory.
const (
	maxHeader   = 256 << 10 // bytes of the top-level header section (DKIM and ARC chains run to tens of KiB)
	maxDepth    = 8         // multipart levels below the top (real mail: 3 or 4)
	maxParts    = 100       // parts visited in all
	maxPerID    = 5         // findings reported per ID
	maxEvidence = 200       // bytes of evidence per finding
)

// rule is the fixed part of a finding: its severity and its fix.
type rule struct {
	id  string
	sev Severity
	fix string
}

// rules is the one table of finding IDs; severities are argued in
// docs/design-notes.md ("Content lint (issue 16)").
var rules = []rule{
	{"from-count", Block, "Send exactly one From header field holding one mailbox (RFC 5322 §3.6); name other authors in Sender or Reply-To."},
	{"from-malformed", Block, `Write From as one valid RFC 5322 address, such as "Name <user@example.com>", with a non-ASCII name encoded per RFC 2047.`},
	{"from-display-mismatch", Block, "Put only your own name or brand in the From display name, with no address, domain or brand other than the From address's own."},
	{"link-shortener", Block, "Link directly to a domain you own instead of through a public URL shortener, whose domains receivers block for the abuse they carry."},
	{"link-text-mismatch", Block, "Make a link's text show the domain the link really goes to, or use words instead of a domain."},
	{"bulk-no-unsubscribe", Block, "Add List-Unsubscribe with an https URI and List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058), both signed by DKIM."},
	{"image-only", Warn, "Say the message in HTML text as well; an HTML body that is only images looks like image spam and shows nothing when images are blocked."},
	{"html-no-text", Warn, "Send a text/plain alternative with the same content next to the HTML (multipart/alternative, RFC 2046 §5.1.4)."},
	{"text-html-imbalance", Warn, "Make the text/plain alternative carry the same content as the HTML part, not a stub."},
	{"missing-date", Warn, `Add exactly one Date header field in RFC 5322 §3.3 form, such as "Mon, 30 Nov 2026 02:14:00 +0000".`},
	{"missing-message-id", Warn, "Add exactly one Message-ID header field of the form <unique@your-domain> (RFC 5322 §3.6.4)."},
	{"missing-charset", Warn, "Declare the charset of 8-bit text in its Content-Type, such as text/plain; charset=utf-8."},
	{"mime-malformed", Warn, "Fix the MIME structure so that every header line and multipart boundary parses (RFC 2045, RFC 2046)."},
	{"image-heavy", Info, "Add text in proportion to the images; a low text-to-image ratio is a spam signal."},
	{"image-no-alt", Info, "Give every remote image an alt attribute, read in place of the image when it is blocked."},
	{"subject-caps", Info, "Write the Subject in sentence case rather than capitals."},
	{"subject-exclaim", Info, "Use at most one exclamation mark in the Subject."},
}

func ruleFor(id string) rule {
	for _, r := range rules {
		if r.id == id {
			return r
		}
	}
	panic("lint: unknown finding ID " + id)
}

// IDs returns every finding ID, for validating a Disabled list and
// pre-declaring metrics.
func IDs() []string {
	ids := make([]string, len(rules))
	for i, r := range rules {
		ids[i] = r.id
	}
	return ids
}

// Check lints the message r and returns its findings, the most severe
// first. Malformed MIME is a finding, not an error; the error is only a
// failure to read r.
func Check(r io.Reader, o Options) ([]Finding, error) {
	max := o.MaxBytes
	if max <= 0 {
		max = DefaultMaxBytes
	}
	src := &capReader{r: r, n: max}
	c := newChecker(o)
	c.message(src)
	if c.lines != nil {
		c.lines.Reset(nil) // drop the message's reader before the pool keeps the buffer
		lineReaders.Put(c.lines)
	}
	if src.err != nil {
		return nil, fmt.Errorf("lint: read message: %w", src.err)
	}
	return c.result(), nil
}

// capReader reads at most n bytes of r and keeps r's first real error
// apart from the parse errors it causes further up.
type capReader struct {
	r   io.Reader
	n   int64
	err error // r's error, other than io.EOF
	hit bool  // the cap stopped reading
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.hit = true
		return 0, io.EOF
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// checker gathers the findings of one message.
type checker struct {
	o          Options
	shorteners map[string]bool // builtinShortenerSet, plus Options.Shorteners
	found      []Finding
	perID      map[string]int
	lines      *bufio.Reader // reads text/plain parts line by line
	src        *capReader
	regs       map[string]string // registrable domains of this message's hosts
}

func newChecker(o Options) *checker {
	c := &checker{o: o, perID: map[string]int{}}
	c.shorteners = builtinShortenerSet
	if len(o.Shorteners) > 0 {
		c.shorteners = maps.Clone(builtinShortenerSet)
		for _, s := range o.Shorteners {
			if s = strings.Trim(strings.ToLower(strings.TrimSpace(s)), "."); s != "" {
				c.shorteners[s] = true
			}
		}
	}
	return c
}

// add records a finding unless its ID is disabled, the same evidence was
// already given, or the ID has maxPerID findings already.
func (c *checker) add(id, evidence string) {
	r := ruleFor(id)
	if c.o.Disabled[id] || c.perID[id] >= maxPerID {
		return
	}
	if !utf8.ValidString(evidence) {
		// A header's encoded word can declare UTF-8 and decode to
		// anything (RFC 2047 §6.2 leaves bad octets to the reader):
		// evidence goes to logs and JSON as valid UTF-8.
		evidence = strings.ToValidUTF8(evidence, "\uFFFD")
	}
	evidence = clip(evidence, maxEvidence)
	for _, f := range c.found {
		if f.ID == id && f.Evidence == evidence {
			return
		}
	}
	c.perID[id]++
	c.found = append(c.found, Finding{ID: id, Severity: r.sev, Evidence: evidence, Fix: r.fix})
}

func (c *checker) result() []Finding {
	slices.SortStableFunc(c.found, func(a, b Finding) int { return int(b.Severity) - int(a.Severity) })
	return c.found
}

// clip shortens s to at most n bytes without splitting a UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n - len("…")
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
