package httpapi

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"
	"unicode/utf8"
)

// Request is the body of POST /v1/messages: the envelope (From, To) and
// either Raw, a complete RFC 5322 message in base64, or the parts sluice
// builds the message from (Subject, Text, HTML, Headers).
type Request struct {
	From    string            `json:"from"` // envelope sender; also the From: field unless Headers give one
	To      []string          `json:"to"`   // envelope recipients
	Raw     string            `json:"raw,omitempty"`
	Subject string            `json:"subject,omitempty"`
	Text    *string           `json:"text,omitempty"`
	HTML    *string           `json:"html,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

// invalid is a request that cannot be made into a message: 422, with a
// detail naming the member at fault (never echoing the client's value
// beyond what JSON escaping makes safe).
type invalid struct{ detail string }

func (e *invalid) Error() string { return e.detail }

func invalidf(format string, a ...any) error { return &invalid{fmt.Sprintf(format, a...)} }

// Fields the caller may not set in Headers: sluice writes the MIME
// structure (RFC 2045), and recipients are the envelope's. Bcc would be
// shown to every recipient: blind copies are envelope recipients (to)
// without a header field.
var reserved = []string{"Mime-Version", "Content-Type", "Content-Transfer-Encoding", "Bcc"}

// Address fields are parsed and written again, so that a display name
// in UTF-8 is encoded (RFC 2047 §5) and nothing but addresses gets in.
var addressFields = []string{"From", "Sender", "Reply-To", "To", "Cc"}

// Message returns the RFC 5322 message of r, with CRLF line endings:
// Raw decoded (bare LFs made CRLF), or the message built from its parts.
// Date: and Message-ID: are added by the acceptance path when missing
// (as for SMTP); MIME-Version: is added here.
func (r *Request) Message() ([]byte, error) {
	if r.From == "" {
		return nil, invalidf("from: the envelope sender is required")
	}
	if len(r.To) == 0 {
		return nil, invalidf("to: at least one recipient is required")
	}
	for i, a := range r.To {
		if strings.ContainsAny(a, "\r\n") || a == "" {
			return nil, invalidf("to[%d]: not an address", i)
		}
	}
	if strings.ContainsAny(r.From, "\r\n") {
		return nil, invalidf("from: not an address")
	}
	if r.Raw != "" {
		if r.Subject != "" || r.Text != nil || r.HTML != nil || len(r.Headers) > 0 {
			return nil, invalidf("raw: give either raw or subject, text, html and headers, not both")
		}
		return decodeRaw(r.Raw)
	}
	if r.Text == nil && r.HTML == nil {
		return nil, invalidf("give raw, or text and/or html")
	}
	return r.build()
}

// decodeRaw decodes a base64 message (standard alphabet, padding
// optional) and makes its line endings CRLF: a lone LF, which SMTP must
// refuse (RFC 5321 §2.3.8) but most programs write, becomes CRLF; a lone
// CR is refused, as it has no one meaning.
func decodeRaw(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil, invalidf("raw: not base64 (RFC 4648 §4)")
	}
	if len(b) == 0 {
		return nil, invalidf("raw: empty message")
	}
	out, err := crlf(b)
	if err != nil {
		return nil, invalidf("raw: %v", err)
	}
	return out, nil
}

var errLoneCR = errors.New("a CR not followed by LF")

// crlf returns b with every lone LF made CRLF; a lone CR is an error.
func crlf(b []byte) ([]byte, error) {
	if !bytes.Contains(b, []byte("\n")) && !bytes.Contains(b, []byte("\r")) {
		return b, nil
	}
	out := make([]byte, 0, len(b)+len(b)/32)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\r' && i+1 < len(b) && b[i+1] == '\n':
			out = append(out, '\r', '\n')
			i++
		case c == '\r':
			return nil, errLoneCR
		case c == '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out, nil
}

// build writes the message of the structured form.
func (r *Request) build() ([]byte, error) {
	var h bytes.Buffer
	names := make([]string, 0, len(r.Headers))
	seen := map[string]string{}
	for k := range r.Headers {
		if !validFieldName(k) {
			return nil, invalidf("headers: a field name must be printable ASCII without ':' or spaces (RFC 5322 §2.2)")
		}
		c := textproto.CanonicalMIMEHeaderKey(k)
		if prev, dup := seen[c]; dup {
			return nil, invalidf("headers: %q and %q name the same field", prev, k)
		}
		seen[c] = k
		if slices.Contains(reserved, c) {
			return nil, invalidf("headers: %s is written by sluice (Bcc: put blind copies in to only)", c)
		}
		if c == "Subject" && r.Subject != "" {
			return nil, invalidf("headers: Subject is also given as subject")
		}
		names = append(names, k)
	}
	slices.Sort(names)
	hasFrom := false
	hasTo := false
	for _, k := range names {
		c := textproto.CanonicalMIMEHeaderKey(k)
		v, err := fieldValue(c, r.Headers[k])
		if err != nil {
			return nil, err
		}
		hasFrom = hasFrom || c == "From"
		hasTo = hasTo || c == "To" || c == "Cc"
		writeField(&h, k, v)
	}
	if !hasFrom {
		v, err := fieldValue("From", r.From)
		if err != nil {
			return nil, invalidf("from: not an address (RFC 5322 §3.4)")
		}
		writeField(&h, "From", v)
	}
	if !hasTo {
		// The envelope recipients are the visible ones unless the
		// headers say otherwise (To: or Cc: given).
		v, err := fieldValue("To", strings.Join(r.To, ", "))
		if err != nil {
			return nil, invalidf("to: not addresses (RFC 5322 §3.4)")
		}
		writeField(&h, "To", v)
	}
	if r.Subject != "" {
		v, err := fieldValue("Subject", r.Subject)
		if err != nil {
			return nil, invalidf("subject: %v", err)
		}
		writeField(&h, "Subject", v)
	}
	writeField(&h, "MIME-Version", "1.0")
	var body bytes.Buffer
	switch {
	case r.Text != nil && r.HTML != nil:
		// RFC 2046 §5.1.4: alternatives in increasing order of
		// preference, plain text first.
		mw := multipart.NewWriter(&body)
		writeField(&h, "Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": mw.Boundary()}))
		for _, p := range []struct{ typ, s string }{{"text/plain", *r.Text}, {"text/html", *r.HTML}} {
			ph := textproto.MIMEHeader{}
			cte := encodingFor(p.s)
			ph.Set("Content-Type", p.typ+"; charset=utf-8")
			ph.Set("Content-Transfer-Encoding", cte)
			w, err := mw.CreatePart(ph)
			if err != nil {
				return nil, err
			}
			if err := writeBody(w, p.s, cte); err != nil {
				return nil, err
			}
		}
		if err := mw.Close(); err != nil {
			return nil, err
		}
	default:
		typ, s := "text/plain", ""
		if r.Text != nil {
			s = *r.Text
		} else {
			typ, s = "text/html", *r.HTML
		}
		cte := encodingFor(s)
		writeField(&h, "Content-Type", typ+"; charset=utf-8")
		writeField(&h, "Content-Transfer-Encoding", cte)
		if err := writeBody(&body, s, cte); err != nil {
			return nil, err
		}
	}
	h.WriteString("\r\n")
	// multipart.Writer writes CRLF itself; the parts' bodies were made
	// CRLF by writeBody.
	h.Write(body.Bytes())
	return h.Bytes(), nil
}

// validFieldName: RFC 5322 §3.6.8 ftext, printable US-ASCII but ':'.
func validFieldName(k string) bool {
	if k == "" || len(k) > 76 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// fieldValue checks and encodes one header field value. CR and LF are
// refused, never stripped (header injection: a value cannot start a
// field of its own); other controls too, but for TAB. Address fields are
// parsed and written again; other values with non-ASCII are RFC 2047
// encoded words.
func fieldValue(name, v string) (string, error) {
	for _, c := range v {
		if c == '\r' || c == '\n' {
			return "", invalidf("headers: %s: CR or LF in a field value", name)
		}
		if c < 32 && c != '\t' || c == 127 {
			return "", invalidf("headers: %s: a control character in a field value", name)
		}
	}
	if !utf8.ValidString(v) {
		return "", invalidf("headers: %s: not UTF-8", name)
	}
	if slices.Contains(addressFields, name) {
		list, err := mail.ParseAddressList(v)
		if err != nil || len(list) == 0 {
			return "", invalidf("headers: %s: not a list of addresses (RFC 5322 §3.4)", name)
		}
		out := make([]string, len(list))
		for i, a := range list {
			out[i] = a.String() // RFC 2047 for a non-ASCII name
		}
		return strings.Join(out, ", "), nil
	}
	if !isASCII(v) {
		v = mime.QEncoding.Encode("utf-8", v) // words of at most 75, separated by spaces
	}
	for _, w := range strings.Fields(v) {
		if len(w) > maxWord {
			return "", invalidf("headers: %s: a word of over %d characters cannot be folded (RFC 5322 §2.1.1)", name, maxWord)
		}
	}
	return v, nil
}

// maxWord bounds a word of a field value: folding happens at spaces, and
// a line may not pass 998 characters (RFC 5322 §2.1.1).
const maxWord = 900

// writeField writes "Name: value" folded at spaces (RFC 5322 §2.2.3) so
// that lines stay within 78 characters where a space allows it, and
// always within 998 (§2.1.1): fieldValue refuses longer words.
func writeField(b *bytes.Buffer, name, v string) {
	line := name + ": "
	words := strings.Split(v, " ")
	b.WriteString(line)
	n := len(line)
	for i, w := range words {
		if i > 0 {
			if n+1+len(w) > 78 && n > len(line) {
				b.WriteString("\r\n ")
				n = 1
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(w)
		n += len(w)
	}
	b.WriteString("\r\n")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// encodingFor picks the Content-Transfer-Encoding of a text part (RFC
// 2045 §6): 7bit for short-lined ASCII; quoted-printable when most of it
// is ASCII (readable, and smaller); base64 when a third or more of the
// bytes are not, where quoted-printable's =XX triples would cost more.
func encodingFor(s string) string {
	high, line, long := 0, 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\n':
			line = 0
		case c >= 0x80:
			high++
			line++
		default:
			line++
		}
		if line > 998 {
			long = true
		}
	}
	switch {
	case high == 0 && !long && !strings.Contains(s, "\r") && !strings.Contains(s, "\x00"):
		return "7bit"
	case high*3 >= len(s):
		return "base64"
	}
	return "quoted-printable"
}

// writeBody writes text s in the canonical form (CRLF line breaks, RFC
// 2046 §4.1.1) with the encoding cte.
func writeBody(w interface{ Write([]byte) (int, error) }, s, cte string) error {
	norm := strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
	switch cte {
	case "7bit":
		_, err := w.Write([]byte(strings.ReplaceAll(norm, "\n", "\r\n")))
		if err == nil && !strings.HasSuffix(norm, "\n") {
			_, err = w.Write([]byte("\r\n"))
		}
		return err
	case "quoted-printable":
		qw := quotedprintable.NewWriter(w)
		if _, err := qw.Write([]byte(strings.ReplaceAll(norm, "\n", "\r\n"))); err != nil {
			return err
		}
		if err := qw.Close(); err != nil {
			return err
		}
		if strings.HasSuffix(norm, "\n") {
			return nil
		}
		// A soft line break (RFC 2045 §6.7 rule 5) ends the last line
		// without adding a line break to the text.
		_, err := w.Write([]byte("=\r\n"))
		return err
	}
	enc := base64.StdEncoding.EncodeToString([]byte(strings.ReplaceAll(norm, "\n", "\r\n")))
	for len(enc) > 76 { // RFC 2045 §6.8: lines of at most 76 characters
		if _, err := w.Write([]byte(enc[:76] + "\r\n")); err != nil {
			return err
		}
		enc = enc[76:]
	}
	_, err := w.Write([]byte(enc + "\r\n"))
	return err
}
