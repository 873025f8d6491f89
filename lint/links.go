package lint

import (
	"net"
	"net/url"
	"regexp"
	"strings"
	"unicode"

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

// isShortener reports whether host is on the list or under a listed domain.
func (c *checker) isShortener(host string) bool {
	for _, d := range c.shorteners {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
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

// domainRE finds host names in free text: dot-separated labels ending in
// an alphabetic label. Whether the last label is a real suffix is checked
// after (isDomain), so "index.html" or "v1.2" is not a domain.
var domainRE = regexp.MustCompile(`(?i)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\b`)

// domainsIn returns the host names shown in text: those whose suffix is
// an ICANN public suffix (publicsuffix's fallback rule would accept any
// word after a dot).
func domainsIn(text string) []string {
	var out []string
	for _, m := range domainRE.FindAllString(text, 8) {
		if isDomain(m) {
			out = append(out, strings.ToLower(m))
		}
	}
	return out
}

func isDomain(s string) bool {
	s = strings.ToLower(s)
	suffix, icann := publicsuffix.PublicSuffix(s)
	return icann && suffix != s
}

// urlRE finds links written as text: with a scheme, starting with www.,
// or a bare host followed by a path (how shortened links are pasted).
var urlRE = regexp.MustCompile(`(?i)\bhttps?://[^\s<>"'\x60]+|(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}/[^\s<>"'\x60]*`)

// textLinks checks the links in a piece of visible text.
func (c *checker) textLinks(s string) {
	if !strings.Contains(s, ".") {
		return
	}
	for _, loc := range urlRE.FindAllStringIndex(s, -1) {
		if loc[0] > 0 && s[loc[0]-1] == '@' {
			continue // the domain of an address, not a link
		}
		u := s[loc[0]:loc[1]]
		if host := linkHost(u); host != "" && c.isShortener(host) {
			c.add("link-shortener", u)
		}
	}
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
