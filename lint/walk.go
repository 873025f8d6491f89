package lint

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// body is what the walk learnt about the message's text, for the checks
// that compare parts.
type body struct {
	parts     int  // parts visited
	truncated bool // the read cap or a walk limit stopped the walk
	htmlParts int
	textParts int
	htmlText  int // visible runes in the HTML parts
	plainText int // visible runes in the text/plain parts
	images    imageStats
}

// message walks the whole message: top-level header checks, then the
// MIME tree.
func (c *checker) message(src *capReader) {
	c.src = src
	// The header section gets a cap of its own, lifted after it: the
	// header parser holds a whole field in memory.
	full := src.n
	src.n = min(full, maxHeader)
	br := bufio.NewReader(src)
	h, err := textproto.ReadHeader(br)
	src.n += full - min(full, maxHeader)
	if err != nil {
		if src.err != nil {
			return
		}
		if src.hit {
			if full > maxHeader {
				c.add("mime-malformed", fmt.Sprintf("header section larger than %d KiB", maxHeader>>10))
			}
			return
		}
		if h.Len() == 0 && errors.Is(err, io.EOF) {
			c.add("mime-malformed", "empty message")
			return
		}
		c.add("mime-malformed", "header: "+err.Error())
		return
	}
	c.headers(h)
	var b body
	c.entity(&b, h, br, 0)
	b.truncated = b.truncated || src.hit
	c.balance(&b)
}

// entity examines one MIME entity (the message or a part) with header h
// and raw (still transfer-encoded) body r.
func (c *checker) entity(b *body, h textproto.Header, r io.Reader, depth int) {
	b.parts++
	ctype, params := contentType(h)
	switch {
	case strings.HasPrefix(ctype, "multipart/"):
		c.multipart(b, ctype, params, r, depth)
	case ctype == "message/rfc822", ctype == "message/global":
		// An attached message is someone else's: its headers and
		// content are not this sender's habits. Not read.
	case strings.HasPrefix(ctype, "text/") && !isAttachment(h):
		c.text(b, h, ctype, params, r)
	default:
		// Attachments and other media are skipped without decoding:
		// the multipart reader steps over them when the next part is
		// asked for, and a top-level one is simply not read.
	}
}

func (c *checker) multipart(b *body, ctype string, params map[string]string, r io.Reader, depth int) {
	boundary := params["boundary"]
	if boundary == "" {
		c.add("mime-malformed", ctype+" without a boundary parameter")
		return
	}
	if depth >= maxDepth {
		c.add("mime-malformed", fmt.Sprintf("multipart nesting deeper than %d levels", maxDepth))
		b.truncated = true
		return
	}
	mr := textproto.NewMultipartReader(r, boundary)
	for {
		if b.parts >= maxParts {
			c.add("mime-malformed", fmt.Sprintf("more than %d MIME parts", maxParts))
			b.truncated = true
			return
		}
		p, err := mr.NextPart()
		if err == io.EOF {
			return
		}
		if err != nil {
			// A missing final boundary is common and harmless, and
			// certain when the read cap cut the message; anything else
			// is a broken structure.
			if !c.src.hit && !errors.Is(err, io.ErrUnexpectedEOF) {
				c.add("mime-malformed", ctype+": "+err.Error())
			}
			b.truncated = true
			return
		}
		c.entity(b, p.Header, p, depth+1)
	}
}

// contentType is the entity's media type, lower case, with text/plain as
// the default for a missing or unparseable field (RFC 2045 §5.2).
func contentType(h textproto.Header) (string, map[string]string) {
	v := h.Get("Content-Type")
	if v == "" {
		return "text/plain", nil
	}
	t, params, err := mime.ParseMediaType(v)
	if err != nil && t == "" {
		return "text/plain", nil
	}
	return strings.ToLower(t), params
}

func isAttachment(h textproto.Header) bool {
	d, _, _ := mime.ParseMediaType(h.Get("Content-Disposition"))
	return strings.EqualFold(d, "attachment")
}

// decoded undoes the Content-Transfer-Encoding of r (RFC 2045 §6). It
// returns nil for an encoding it does not know, which RFC 2045 §6.4 says
// to treat as opaque data.
func decoded(h textproto.Header, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "", "7bit", "8bit", "binary":
		return r
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &base64Filter{r: r})
	}
	return nil
}

// base64Filter drops what is not in the base64 alphabet (line breaks,
// spaces, junk), as mail readers do (RFC 2045 §6.8: "any characters
// outside of the base64 alphabet are to be ignored"), so broken base64
// decodes to whatever it carries instead of stopping the walk.
type base64Filter struct{ r io.Reader }

func (f *base64Filter) Read(p []byte) (int, error) {
	for {
		n, err := f.r.Read(p)
		k := 0
		for _, ch := range p[:n] {
			if ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '+' || ch == '/' || ch == '=' {
				p[k] = ch
				k++
			}
		}
		if k > 0 || err != nil {
			return k, err
		}
	}
}

// text examines a text part that is shown to the reader.
func (c *checker) text(b *body, h textproto.Header, ctype string, params map[string]string, raw io.Reader) {
	r := decoded(h, raw)
	if r == nil {
		return
	}
	hasCharset := strings.TrimSpace(params["charset"]) != ""
	ew := &eightBitWatch{r: r}
	switch ctype {
	case "text/html":
		b.htmlParts++
		c.html(b, ew)
	case "text/plain":
		b.textParts++
		b.plainText += c.plain(ew)
	default:
		// text/calendar, text/csv...: only the charset matters here.
		_, _ = io.Copy(io.Discard, ew)
	}
	if ew.seen && !hasCharset {
		c.add("missing-charset", fmt.Sprintf("%s part with 8-bit text and no charset parameter", ctype))
	}
}

// eightBitWatch notes whether any byte it passes on is outside US-ASCII.
type eightBitWatch struct {
	r    io.Reader
	seen bool
}

func (w *eightBitWatch) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if !w.seen {
		for _, ch := range p[:n] {
			if ch >= 0x80 {
				w.seen = true
				break
			}
		}
	}
	return n, err
}

// balance compares the HTML with its text alternative once the walk is
// over.
func (c *checker) balance(b *body) {
	if b.htmlParts == 0 {
		return
	}
	c.imageFindings(b)
	if b.textParts == 0 {
		// With the walk cut short, a text part may lie beyond: an
		// absence cannot be proven.
		if !b.truncated {
			c.add("html-no-text", "text/html with no text/plain part")
		}
		return
	}
	switch {
	case b.plainText < minTextRunes && b.htmlText >= minTextRunes:
		c.add("text-html-imbalance", fmt.Sprintf("text/plain part is empty or nearly (%d characters against %d in the HTML)", b.plainText, b.htmlText))
	case b.htmlText >= 200 && b.plainText*4 < b.htmlText:
		c.add("text-html-imbalance", fmt.Sprintf("text/plain part has %d characters against %d in the HTML", b.plainText, b.htmlText))
	}
}

// minTextRunes is the visible text under which a part says nothing.
const minTextRunes = 20
