package auth

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
)

// headerField is one unfolded header field.
type headerField struct {
	Name  string // as written, trailing white space removed ("From :" -> "From")
	Value string // unfolded (RFC 5322 §2.2.3), leading space trimmed
}

// messageHeader returns the header section: everything before the first
// empty line. A message with no empty line is all header.
func messageHeader(body []byte) []byte {
	if i := bytes.Index(body, []byte("\r\n\r\n")); i >= 0 {
		return body[:i+2]
	}
	if bytes.HasPrefix(body, []byte("\r\n")) {
		return nil
	}
	return body
}

// parseHeader splits a header section into unfolded fields. It accepts LF
// as well as CRLF so that a lone-LF spoofing attempt is still seen.
func parseHeader(h []byte) []headerField {
	var out []headerField
	for _, line := range strings.Split(strings.ReplaceAll(string(h), "\r\n", "\n"), "\n") {
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1].Value += line
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		// RFC 5322 §4.5.5 (obsolete syntax) allows white space before the
		// colon. Receivers honour "From :", so it is a From header here too.
		out = append(out, headerField{Name: strings.TrimRight(name, " \t"), Value: strings.TrimLeft(value, " \t")})
	}
	return out
}

// fromResult is what the From header says about the author domain.
type fromResult struct {
	Domain  string // the single author domain, lower-case; "" when Problem is set
	Problem string // why the message cannot be aligned, "" when fine
	Count   int    // number of From header fields
}

// parseFrom reads the From header fields of a message. A message with no
// From, several From fields (RFC 5322 §3.6 allows exactly one), an
// unparseable From, or a From with several mailboxes has no single author
// domain, so DMARC cannot align it (RFC 7489 §6.6.1).
func parseFrom(body []byte) fromResult {
	var values []string
	for _, f := range parseHeader(messageHeader(body)) {
		if strings.EqualFold(f.Name, "From") {
			values = append(values, f.Value)
		}
	}
	r := fromResult{Count: len(values)}
	switch len(values) {
	case 0:
		r.Problem = "the message has no From header"
		return r
	case 1:
	default:
		r.Problem = fmt.Sprintf("the message has %d From headers", len(values))
		return r
	}
	addrs, err := parseAddressList(values[0])
	if err != nil {
		r.Problem = fmt.Sprintf("the From header cannot be parsed (%v)", err)
		return r
	}
	if len(addrs) != 1 {
		r.Problem = fmt.Sprintf("the From header has %d addresses", len(addrs))
		return r
	}
	d := addrDomain(addrs[0].Address)
	if d == "" || strings.HasPrefix(d, "[") {
		r.Problem = fmt.Sprintf("the From address %q has no domain name", addrs[0].Address)
		return r
	}
	r.Domain = d
	return r
}

func parseAddressList(v string) ([]*mail.Address, error) {
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{
		// Only the address matters, not the display name: accept any
		// charset rather than call an exotic one unparseable.
		CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
	}}
	return p.ParseList(v)
}

// addrDomain returns the lower-case domain after the last '@', or "".
func addrDomain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return normDomain(addr[i+1:])
}
