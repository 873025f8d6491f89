package lint

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// imageStats sums the images of the HTML parts.
type imageStats struct {
	count int   // images that are not tracking pixels
	area  int64 // their declared width × height, where both are given
}

// maxToken bounds the tokenizer's buffer: a single tag or text run larger
// than this ends the part's examination instead of growing memory.
const maxToken = 64 << 10

// maxAnchorText is the anchor text kept to look for a domain in it.
const maxAnchorText = 512

// html examines one HTML part: visible text, links, images. It streams
// the part through the tokenizer.
func (c *checker) html(b *body, r io.Reader) {
	z := html.NewTokenizer(r)
	z.SetMaxBuf(maxToken)
	var (
		hidden   int // depth inside head, script, style, title, template
		inAnchor bool
		href     string
		anchor   strings.Builder
	)
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if err := z.Err(); !errors.Is(err, io.EOF) {
				b.truncated = true
			}
			_, _ = io.Copy(io.Discard, r) // for the 8-bit watch; bounded by the read cap
			return
		case html.TextToken:
			if hidden > 0 {
				continue
			}
			t := z.Text()
			b.htmlText += visibleRunes(t)
			if inAnchor && anchor.Len() < maxAnchorText {
				anchor.Write(t[:min(len(t), maxAnchorText-anchor.Len())])
			}
			if mayLink(t) {
				c.textLinks(string(t))
			}
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, hasAttr := z.TagName()
			a := atom.Lookup(name)
			switch a {
			case atom.Head, atom.Script, atom.Style, atom.Title, atom.Template, atom.Noscript:
				if tt == html.StartTagToken {
					hidden++
				} else if tt == html.EndTagToken && hidden > 0 {
					hidden--
				}
			case atom.A:
				if tt == html.EndTagToken {
					if inAnchor {
						c.anchor(href, anchor.String())
					}
					inAnchor = false
					continue
				}
				if inAnchor { // an unclosed anchor ends at the next one
					c.anchor(href, anchor.String())
				}
				href = attrs(z, hasAttr).href
				inAnchor, anchor = tt == html.StartTagToken, strings.Builder{}
				if tt == html.SelfClosingTagToken {
					c.anchor(href, "")
				}
			case atom.Img:
				if tt != html.EndTagToken {
					c.image(b, attrs(z, hasAttr))
				}
			}
		}
	}
}

// tagAttrs is the attributes the checks use of one a or img tag; the
// first of a duplicated attribute counts, as in browsers.
type tagAttrs struct {
	href, src, alt, width, height string
	hasAlt                        bool
	seen                          uint8 // bits of the attributes read
}

// attrs reads the current tag's attributes (the ones the checks use),
// without a map: an a or img tag per paragraph is the newsletter's
// common case.
func attrs(z *html.Tokenizer, more bool) tagAttrs {
	var a tagAttrs
	for more {
		var k, v []byte
		k, v, more = z.TagAttr()
		var bit uint8
		var dst *string
		switch string(k) { // no allocation: the conversion is only compared
		case "href":
			bit, dst = 1, &a.href
		case "src":
			bit, dst = 2, &a.src
		case "alt":
			bit, dst, a.hasAlt = 4, &a.alt, true
		case "width":
			bit, dst = 8, &a.width
		case "height":
			bit, dst = 16, &a.height
		default:
			continue
		}
		if a.seen&bit == 0 {
			a.seen |= bit
			*dst = string(v)
		}
	}
	return a
}

// anchor checks one link: where it goes, and what its text claims.
func (c *checker) anchor(href, text string) {
	host := hrefHost(href)
	if host == "" {
		return
	}
	if c.isShortener(host) {
		c.add("link-shortener", strings.TrimSpace(href))
	}
	shown := domainsIn(text)
	if len(shown) == 0 {
		return
	}
	target := c.registrable(host)
	for _, d := range shown {
		if c.registrable(d) == target {
			return
		}
	}
	c.add("link-text-mismatch", fmt.Sprintf("link text shows %s, href goes to %s", shown[0], host))
}

// image counts an <img> and checks its alt text.
func (c *checker) image(b *body, a tagAttrs) {
	w, wok := pixels(a.width)
	h, hok := pixels(a.height)
	if wok && hok && w <= 2 && h <= 2 {
		return // a tracking pixel or spacer: not content
	}
	b.images.count++
	if wok && hok {
		b.images.area += int64(w) * int64(h)
	}
	src := strings.TrimSpace(a.src)
	l := strings.ToLower(src)
	remote := strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "//")
	if remote && !a.hasAlt {
		// alt="" is the correct mark of a decorative image (WCAG H67);
		// only a missing attribute leaves a blank box when images are off.
		c.add("image-no-alt", "img src="+src)
	}
}

// pixels reads an HTML width or height: "600" or "600px"; percentages
// and other units are unknown.
func pixels(s string) (int, bool) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "px")
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 100000 {
		return 0, false
	}
	return n, true
}

// imageFindings judges the images against the HTML's text. The bands
// follow SpamAssassin's HTML_IMAGE_ONLY_* (images with under 400 bytes of
// text) and HTML_IMAGE_RATIO_* (text per image pixel under 0.008) families,
// set lower so that a finding means a real imbalance.
func (c *checker) imageFindings(b *body) {
	img := b.images
	if img.count == 0 {
		return
	}
	switch {
	case b.htmlText < imageOnlyText:
		c.add("image-only", fmt.Sprintf("HTML has %d image(s) and %d characters of text", img.count, b.htmlText))
	case img.area > 0 && float64(b.htmlText)/float64(img.area) < imageRatio,
		img.area == 0 && b.htmlText < imageHeavyTextPerImage*img.count:
		c.add("image-heavy", fmt.Sprintf("HTML has %d image(s) (%d px declared) and %d characters of text", img.count, img.area, b.htmlText))
	}
}

const (
	imageOnlyText          = 100   // visible characters (about 20 words) under which the images are the message
	imageRatio             = 0.004 // characters per declared image pixel
	imageHeavyTextPerImage = 150   // characters per image when sizes are not declared
)

// visibleRunes counts the characters a reader sees: not spaces (NBSP
// included) and not the invisible format characters used as preheader
// padding (U+200B, U+034F...).
func visibleRunes(b []byte) int {
	n := 0
	for len(b) > 0 {
		if c := b[0]; c < utf8.RuneSelf { // ASCII: printable and not a space
			if c > ' ' && c < 0x7f {
				n++
			}
			b = b[1:]
			continue
		}
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		if !unicode.IsSpace(r) && unicode.IsGraphic(r) && !unicode.Is(unicode.Mn, r) {
			n++
		}
	}
	return n
}

// mayLink reports whether text may hold a link, which needs a dot and a
// slash (textLinks): text without them is not copied into a string, and
// most lines of a plain message have no slash.
func mayLink(text []byte) bool {
	return bytes.IndexByte(text, '.') >= 0 && bytes.IndexByte(text, '/') >= 0
}

// lineReaders are the 16 KB line buffers of plain, reused across
// messages (Check returns its reader to the pool).
var lineReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}

// plain examines a text/plain part line by line and returns its visible
// characters. A line longer than the reader's buffer is examined in
// pieces.
func (c *checker) plain(r io.Reader) int {
	if c.lines == nil {
		// One buffer for all the parts of a message, from a pool: a
		// relay lints every message, and a fresh 16 KB buffer each time
		// was most of what Check allocated for a small one.
		c.lines = lineReaders.Get().(*bufio.Reader)
	}
	c.lines.Reset(r)
	br := c.lines
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		n += visibleRunes(line)
		if mayLink(line) {
			c.textLinks(string(line))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return n
		}
	}
}
