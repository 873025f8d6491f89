package lint

import (
	"net"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/publicsuffix"
)

// builtinShorteners are public URL shorteners: anyone can point them
// anywhere, so receivers' URI blocklists and SpamAssassin's URIShortener
// rules treat a link through them as the spammer's way of hiding the
// target. A brand's own short domain that only leads to the brand
// (youtu.be, amzn.to) is not listed.
var builtinShorteners = []string{
	"bit.ly", "bitly.com", "j.mp", "bit.do", "tinyurl.com", "tiny.one", "t.co",
	"goo.gl", "ow.ly", "is.gd", "v.gd", "buff.ly", "rebrand.ly", "cutt.ly",
	"cutt.us", "shorturl.at", "tiny.cc", "rb.gy", "s.id", "t.ly", "bl.ink",
	"lnkd.in", "soo.gd", "clck.ru", "shorte.st", "adf.ly", "bc.vc", "x.co",
	"tr.im", "qrco.de", "snip.ly", "urlz.fr", "t2m.io", "surl.li", "u.to",
	"shorturl.gg", "shrtco.de", "tinu.be", "y2u.be", "1url.com",
}

// builtinShortenerSet is builtinShorteners as a set.
var builtinShortenerSet = func() map[string]bool {
	m := make(map[string]bool, len(builtinShorteners))
	for _, d := range builtinShorteners {
		m[d] = true
	}
	return m
}()

// isShortener reports whether host is on the list or under a listed
// domain: host itself or one of its parent domains is in the set, one
// lookup per label (a scan of the list with a "."+d per entry cost more
// than the rest of a newsletter's link checks).
func (c *checker) isShortener(host string) bool {
	for h := host; h != ""; {
		if c.shorteners[h] {
			return true
		}
		i := strings.IndexByte(h, '.')
		if i < 0 {
			break
		}
		h = h[i+1:]
	}
	return false
}

// registrable is the registrable domain ("eTLD+1") of host, which is what
// "the same site" means for links and senders: news.example.co.uk and
// example.co.uk are one. A host without one (an IP literal, a bare
// suffix) stands for itself.
func registrable(host string) string {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if d, err := publicsuffix.EffectiveTLDPlusOne(host); err == nil {
		return d
	}
	return host
}

// registrable is registrable(host), remembered for the message: a
// newsletter links to the same few hosts in every paragraph, and the
// public suffix lookup allocates (it tries the name as an IP address
// first). At most maxRegistrable hosts are kept.
func (c *checker) registrable(host string) string {
	if d, ok := c.regs[host]; ok {
		return d
	}
	d := registrable(host)
	if c.regs == nil {
		c.regs = make(map[string]string, 8)
	}
	if len(c.regs) < maxRegistrable {
		c.regs[host] = d
	}
	return d
}

const maxRegistrable = 64

// domainsIn returns the host names shown in text (at most 8): runs of
// letters, digits, dots and hyphens whose last label is an ICANN public
// suffix (publicsuffix's fallback rule would accept any word after a
// dot), so "index.html", "J.R.R." and "v1.2" are not domains.
func domainsIn(text string) []string {
	var out []string
	for len(text) > 0 && len(out) < 8 {
		i := strings.IndexFunc(text, func(r rune) bool { return !isHostRune(r) })
		word := text
		if i >= 0 {
			_, size := utf8.DecodeRuneInString(text[i:])
			word, text = text[:i], text[i+size:]
		} else {
			text = ""
		}
		word = strings.Trim(word, ".-")
		if strings.Contains(word, ".") && isDomain(word) {
			out = append(out, strings.ToLower(word))
		}
	}
	return out
}

func isHostRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-'
}

func isDomain(s string) bool {
	s = strings.ToLower(s)
	if strings.Contains(s, "..") {
		return false
	}
	suffix, icann := publicsuffix.PublicSuffix(s)
	return icann && suffix != s
}

// textLinks checks the links written as text: with a scheme, or a bare
// host followed by a path (how shortened links are pasted). It splits
// words by hand rather than with a regular expression, so a hostile
// megabyte-long "word" costs one pass.
func (c *checker) textLinks(s string) {
	if !strings.Contains(s, ".") {
		return
	}
	for len(s) > 0 {
		i := strings.IndexFunc(s, isLinkSep)
		word := s
		if i >= 0 {
			word, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		// A link has a dot and a slash ("https://..." or "host.tld/...",
		// see textLinkHost): most words have neither and cost no more.
		if len(word) < 4 || strings.IndexByte(word, '/') < 0 || strings.IndexByte(word, '.') < 0 {
			continue
		}
		word = trimTrailingPunct(word)
		if len(word) < 4 || !strings.Contains(word, ".") {
			continue
		}
		if host := textLinkHost(word); host != "" && c.isShortener(host) {
			c.add("link-shortener", word)
		}
	}
}

// trimTrailingPunct drops the sentence punctuation after a link ("see
// https://bit.ly/x."), as strings.TrimRight(word, ".,;:!?") would, without
// building the cutset's table on every call.
func trimTrailingPunct(word string) string {
	for len(word) > 0 {
		switch word[len(word)-1] {
		case '.', ',', ';', ':', '!', '?':
			word = word[:len(word)-1]
			continue
		}
		break
	}
	return word
}

func isLinkSep(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiLinkSep[r]
	}
	return unicode.IsSpace(r)
}

// asciiLinkSep is isLinkSep for ASCII, a table: it runs on every rune of
// every text line with a dot.
var asciiLinkSep = func() (t [utf8.RuneSelf]bool) {
	for r := range rune(utf8.RuneSelf) {
		t[r] = linkSepRune(r)
	}
	return t
}()

func linkSepRune(r rune) bool {
	switch r {
	case '<', '>', '"', '\'', '`', '(', ')', '[', ']', '{', '}', '|':
		return true
	}
	return unicode.IsSpace(r)
}

// textLinkHost is the host of a word that is a link: "https://host/..."
// or "host.tld/..." (a bare host needs a path: "we never use bit.ly" is a
// mention, not a link), not an address ("x@t.co/").
func textLinkHost(word string) string {
	l := strings.ToLower(word)
	if strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") {
		return linkHost(word)
	}
	slash := strings.IndexByte(l, '/')
	if slash <= 0 {
		return ""
	}
	host := l[:slash]
	for _, ch := range host {
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '-') {
			return "" // an address, a path, a scheme other than http
		}
	}
	if !isDomain(host) {
		return ""
	}
	return host
}

// linkHost is the lower-case host of an http(s) link, with or without its
// scheme, or "" for anything else (mailto:, tel:, a relative path).
func linkHost(link string) string {
	link = strings.TrimSpace(link)
	l := strings.ToLower(link)
	switch {
	case strings.HasPrefix(l, "http://"), strings.HasPrefix(l, "https://"):
	case strings.HasPrefix(l, "//"):
		link = "https:" + link
	case strings.Contains(l, ":") && !strings.Contains(l[:strings.Index(l, ":")], "."):
		return "" // another scheme
	default:
		link = "https://" + link
	}
	if h, ok := plainHost(link); ok {
		return h
	}
	return parsedHost(link)
}

// parsedHost is the host of an absolute link by url.Parse, lower-case,
// without a port or a final dot; "" when it does not parse.
func parsedHost(link string) string {
	u, err := url.Parse(link)
	if err != nil || u.Host == "" {
		return ""
	}
	host := u.Hostname()
	if h, _, err := net.SplitHostPort(u.Host); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// plainHost is linkHost's fast path, for the common link
// "http(s)://host.name/...": a host of letters, digits, dots and hyphens
// only, ended by a path, query or fragment or the end. Anything else
// (userinfo, a port, an IP literal, percent-escapes, a backslash) goes
// through url.Parse. link starts with "http://", "https://" or "https:"
// followed by "//", in any case.
func plainHost(link string) (string, bool) {
	i := strings.Index(link, "//")
	if i < 0 {
		return "", false
	}
	rest := link[i+2:]
	end := len(rest)
	for j := 0; j < len(rest); j++ {
		ch := rest[j]
		if ch == '/' || ch == '?' || ch == '#' {
			end = j
			break
		}
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '-') {
			return "", false
		}
	}
	if end == 0 {
		return "", false
	}
	// The rest of the link must be what url.Parse accepts without a
	// doubt: printable ASCII with no space or percent sign (an escape
	// url.Parse could refuse).
	for j := end; j < len(rest); j++ {
		if ch := rest[j]; ch <= ' ' || ch >= 0x7f || ch == '%' {
			return "", false
		}
	}
	return strings.TrimSuffix(strings.ToLower(rest[:end]), "."), true
}

// hrefHost is the host of an anchor's href if it is an absolute http(s)
// or scheme-relative link, which is all a reader can be misled about.
func hrefHost(href string) string {
	l := strings.ToLower(strings.TrimSpace(href))
	if strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "//") {
		return linkHost(href)
	}
	return ""
}

// brands are the names phishing most often borrows, each with the
// registrable-domain labels that really send its mail. A display name
// carrying the brand from any other domain is display-name spoofing.
// Only names that are not also common first names or words are listed.
var brands = map[string][]string{
	"paypal":           {"paypal"},
	"apple":            {"apple", "icloud", "me"},
	"icloud":           {"apple", "icloud", "me"},
	"microsoft":        {"microsoft", "office", "office365", "outlook", "live", "hotmail", "msn", "microsoftonline", "sharepoint"},
	"office 365":       {"microsoft", "office", "office365", "outlook", "microsoftonline"},
	"office365":        {"microsoft", "office", "office365", "outlook", "microsoftonline"},
	"outlook":          {"microsoft", "office", "office365", "outlook", "live", "hotmail"},
	"onedrive":         {"microsoft", "live", "onedrive"},
	"sharepoint":       {"microsoft", "sharepoint"},
	"google":           {"google", "gmail", "googlemail", "youtube"},
	"gmail":            {"google", "gmail", "googlemail"},
	"amazon":           {"amazon", "amazonses", "aws"},
	"netflix":          {"netflix"},
	"dhl":              {"dhl"},
	"fedex":            {"fedex"},
	"usps":             {"usps"},
	"docusign":         {"docusign"},
	"wells fargo":      {"wellsfargo", "wf"},
	"bank of america":  {"bankofamerica", "bofa"},
	"american express": {"americanexpress", "aexp", "amex"},
	"facebook":         {"facebook", "facebookmail", "fb", "meta"},
	"instagram":        {"instagram", "facebookmail"},
	"linkedin":         {"linkedin"},
	"dropbox":          {"dropbox", "dropboxmail"},
	"adobe":            {"adobe"},
	"coinbase":         {"coinbase"},
	"binance":          {"binance"},
	"ebay":             {"ebay"},
	"walmart":          {"walmart"},
	"wetransfer":       {"wetransfer"},
	"royal mail":       {"royalmail"},
	"hmrc":             {"hmrc"},
}

// foreignBrand returns a brand named in text (as whole words, in any
// case) that the registrable domain d does not own.
func foreignBrand(text, d string) (string, bool) {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	joined := " " + strings.Join(words, " ") + " "
	for b := range brands {
		if strings.Contains(joined, " "+b+" ") && !brandOwns(b, d) {
			return b, true
		}
	}
	return "", false
}

// brandOwns reports whether the registrable domain d belongs to brand.
func brandOwns(brand, d string) bool {
	label, _, _ := strings.Cut(d, ".")
	for _, l := range brands[brand] {
		if label == l {
			return true
		}
	}
	return false
}
