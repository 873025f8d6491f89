package lint

import (
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"unicode"

	"github.com/emersion/go-message/charset"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"golang.org/x/net/publicsuffix"
)

// wordDecoder decodes RFC 2047 encoded-words in any charset go-message
// knows, so that a Subject or display name is judged as the reader sees it.
var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// headers runs the checks on the top-level header fields.
func (c *checker) headers(h textproto.Header) {
	c.from(h)
	c.date(h)
	c.messageID(h)
	c.subject(h)
	if c.o.Bulk {
		c.unsubscribe(h)
	}
}

// from checks that there is exactly one From field with one mailbox
// (RFC 5322 §3.6: From occurs once; §3.6.2: a mailbox-list needs a
// Sender, and DMARC, RFC 7489 §6.6.1, cannot judge one with several
// domains, so receivers reject it), then its display name.
func (c *checker) from(h textproto.Header) {
	vals := h.Values("From")
	switch {
	case len(vals) == 0:
		c.add("from-count", "no From header field")
		return
	case len(vals) > 1:
		c.add("from-count", fmt.Sprintf("%d From header fields", len(vals)))
		return
	}
	if len(vals[0]) > maxFrom {
		// One mailbox is never this long (RFC 5322 §2.1.1: 998 characters
		// a line); and net/mail would spend megabytes parsing it.
		c.add("from-malformed", fmt.Sprintf("From: %d bytes long: %s", len(vals[0]), vals[0]))
		return
	}
	list, err := (&mail.AddressParser{WordDecoder: wordDecoder}).ParseList(vals[0])
	if err != nil || len(list) == 0 {
		c.add("from-malformed", "From: "+vals[0])
		return
	}
	if len(list) > 1 {
		c.add("from-count", fmt.Sprintf("From: lists %d mailboxes", len(list)))
		return
	}
	c.displayName(list[0])
}

// displayName flags a display name that names another address, domain or
// a well-known brand than the From address's own: the display-name
// spoofing that Gmail and Outlook treat as phishing.
func (c *checker) displayName(a *mail.Address) {
	name := strings.TrimSpace(a.Name)
	if name == "" {
		return
	}
	// A reader sees the first few words; the bound also keeps a hostile
	// name of 256 KiB of "@" from costing a quadratic scan.
	name = clip(name, maxAnchorText)
	at := strings.LastIndexByte(a.Address, '@')
	if at < 0 {
		return
	}
	fromDomain := strings.ToLower(a.Address[at+1:])
	own := registrable(fromDomain)
	evidence := fmt.Sprintf("From: %q <%s>", name, a.Address)
	// An address in the name counts whatever its suffix; a bare domain
	// only if a reader would take it for one.
	for rest := name; ; {
		at := strings.IndexByte(rest, '@')
		if at < 0 {
			break
		}
		rest = rest[at+1:]
		if ds := domainsIn(rest); len(ds) > 0 && strings.HasPrefix(strings.ToLower(rest), ds[0]) && registrable(ds[0]) != own {
			c.add("from-display-mismatch", evidence)
			return
		}
	}
	for _, d := range domainsIn(name) {
		if nameDomain(d) && registrable(d) != own {
			c.add("from-display-mismatch", evidence)
			return
		}
	}
	if _, ok := foreignBrand(name, own); ok {
		c.add("from-display-mismatch", evidence)
	}
}

// maxFrom is the longest From field parsed.
const maxFrom = 2048

// nameDomain reports whether a domain found in a display name is one a
// reader takes for a domain: under a country code or one of the classic
// generic suffixes, or written with www. New generic suffixes are also
// words people put in names ("Support.Team", "Mr.Green"), and a false
// block is worse than a missed nudge.
func nameDomain(d string) bool {
	if strings.HasPrefix(d, "www.") {
		return true
	}
	suffix, _ := publicsuffix.PublicSuffix(d)
	if strings.Contains(suffix, ".") || len(suffix) == 2 {
		return true
	}
	switch suffix {
	case "com", "net", "org", "info", "biz", "gov", "edu", "mil", "int":
		return true
	}
	return false
}

// date checks for exactly one parseable Date (RFC 5322 §3.6: "orig-date"
// occurs exactly once; §3.3 its syntax).
func (c *checker) date(h textproto.Header) {
	c.once(h, "Date", "Date", "missing-date", func(v string) bool {
		_, err := mail.ParseDate(v)
		return err == nil
	})
}

// messageID checks for exactly one well-formed Message-ID (RFC 5322
// §3.6.4: msg-id = "<" id-left "@" id-right ">"; it SHOULD be present and
// receivers such as Gmail defer or refuse mail without it).
func (c *checker) messageID(h textproto.Header) {
	c.once(h, "Message-Id", "Message-ID", "missing-message-id", func(v string) bool {
		mh := gomail.HeaderFromMap(map[string][]string{"Message-Id": {v}})
		id, err := mh.MessageID()
		return err == nil && strings.Contains(id, "@")
	})
}

// once adds finding id unless header key (shown as name) occurs exactly
// once with a value that valid accepts.
func (c *checker) once(h textproto.Header, key, name, id string, valid func(string) bool) {
	vals := h.Values(key)
	switch {
	case len(vals) == 0:
		c.add(id, "no "+name+" header field")
	case len(vals) > 1:
		c.add(id, fmt.Sprintf("%d %s header fields", len(vals), name))
	case !valid(vals[0]):
		c.add(id, "malformed "+name+": "+vals[0])
	}
}

// subject flags a shouting Subject, decoded from RFC 2047 first.
func (c *checker) subject(h textproto.Header) {
	raw := h.Get("Subject")
	if raw == "" {
		return
	}
	s, err := wordDecoder.DecodeHeader(raw)
	if err != nil {
		s = raw
	}
	if subjectAllCaps(s) {
		c.add("subject-caps", "Subject: "+s)
	}
	if subjectExclaims(s) {
		c.add("subject-exclaim", "Subject: "+s)
	}
}

// subjectAllCaps mirrors SpamAssassin's subject_is_all_caps: reply
// prefixes stripped, at least two words and ten characters, and every
// cased letter upper case.
func subjectAllCaps(s string) bool {
	s = strings.TrimSpace(s)
	for {
		l := strings.ToLower(s)
		cut := false
		for _, p := range []string{"re:", "fwd:", "fw:", "aw:", "sv:", "wg:"} {
			if strings.HasPrefix(l, p) {
				s = strings.TrimSpace(s[len(p):])
				cut = true
				break
			}
		}
		if !cut {
			break
		}
	}
	if !strings.ContainsAny(s, " \t") || len(s) < 10 {
		return false
	}
	letters := 0
	for _, r := range s {
		if unicode.IsLower(r) {
			return false
		}
		if unicode.IsUpper(r) {
			letters++
		}
	}
	return letters >= 5
}

// subjectExclaims is true for three or more exclamation marks, or two in
// a row: "!!!" is the most reliable single sign of promotional shouting.
func subjectExclaims(s string) bool {
	n := strings.Count(s, "!") + strings.Count(s, "！")
	return n >= 3 || strings.Contains(s, "!!")
}

// unsubscribe checks RFC 8058 one-click unsubscribe, which Gmail and
// Yahoo require of bulk senders since 2024: List-Unsubscribe with an
// https URI (§3.1) and List-Unsubscribe-Post: List-Unsubscribe=One-Click.
func (c *checker) unsubscribe(h textproto.Header) {
	var missing []string
	if !hasHTTPSURI(h.Get("List-Unsubscribe")) {
		if h.Has("List-Unsubscribe") {
			missing = append(missing, "List-Unsubscribe has no <https:...> URI")
		} else {
			missing = append(missing, "no List-Unsubscribe")
		}
	}
	if post := strings.TrimSpace(h.Get("List-Unsubscribe-Post")); post != "List-Unsubscribe=One-Click" {
		if post == "" {
			missing = append(missing, "no List-Unsubscribe-Post")
		} else {
			missing = append(missing, "List-Unsubscribe-Post: "+post)
		}
	}
	if len(missing) > 0 {
		c.add("bulk-no-unsubscribe", "bulk sender: "+strings.Join(missing, ", "))
	}
}

// hasHTTPSURI reports whether a List-Unsubscribe value (RFC 2369: a list
// of <URI>) holds an https URI.
func hasHTTPSURI(v string) bool {
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if strings.HasPrefix(part, "<") && strings.HasSuffix(part, ">") &&
			strings.HasPrefix(strings.ToLower(part[1:]), "https://") {
			return true
		}
	}
	return false
}
