// Package tlsrpt is SMTP TLS Reporting (RFC 8460) for the outbound side:
// it moves the TLS outcomes the outbound client tallies
// (outbound.TLSResults) into the queue file in batches, turns each
// reporting period's outcomes into one aggregate report per policy
// domain (§4), finds where the domain wants it (the _smtp._tls TXT
// record, §3) and delivers it by mail through sluice's own queue or by
// HTTPS POST (§5).
//
// Durability: outcomes are written to the queue file's "tlsrpt" bucket
// every FlushEvery and at every period boundary; a crash loses at most
// the outcomes of the last FlushEvery. A report leaves the store only
// once a destination took it (a mail is in the queue, a POST got 2xx),
// or when it has been undeliverable for longer than GiveUpAfter.
package tlsrpt

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/miekg/dns"

	"sluice/resolver"
)

// Resolver is the part of *resolver.Resolver reporting uses.
type Resolver interface {
	Lookup(ctx context.Context, name string, qtype uint16) (resolver.Answer, error)
}

// ErrSyntax marks a TXT record that does not follow RFC 8460 §3's ABNF.
var ErrSyntax = errors.New("tlsrpt: syntax")

// ErrNoRecord: the domain has no usable TLS-RPT record (none, or several:
// RFC 8460 §3 says a sender then does not report).
var ErrNoRecord = errors.New("tlsrpt: no usable _smtp._tls TXT record")

// MaxRUA bounds the URIs of one record: every one costs a delivery.
const MaxRUA = 10

// ParseRecord parses a TLS-RPT TXT record (RFC 8460 §3):
//
//	tlsrpt-record  = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
//	field-delim    = *WSP ";" *WSP
//	tlsrpt-field   = tlsrpt-rua / tlsrpt-extension
//	tlsrpt-version = %s"v=TLSRPTv1"
//	tlsrpt-rua     = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
//	tlsrpt-uri     = URI   ; commas (0x2C) and exclamation points (0x21) MUST be encoded
//	tlsrpt-extension = tlsrpt-ext-name "=" tlsrpt-ext-value
//	tlsrpt-ext-name  = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
//	tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)
//
// It returns the rua URIs. §3 defines two schemes, mailto and https;
// URIs of other schemes are skipped, and a record whose rua names
// neither is an error, as are a missing or repeated rua and anything
// off the ABNF.
func ParseRecord(txt string) ([]*url.URL, error) {
	rest, ok := strings.CutPrefix(txt, "v=TLSRPTv1")
	if !ok {
		return nil, fmt.Errorf("%w: does not begin with v=TLSRPTv1", ErrSyntax)
	}
	var fields []string
	for rest != "" {
		r := strings.TrimLeft(rest, " \t")
		if !strings.HasPrefix(r, ";") {
			return nil, fmt.Errorf("%w: want ';' before %q", ErrSyntax, rest)
		}
		r = strings.TrimLeft(r[1:], " \t")
		if r == "" {
			break // the optional trailing field-delim
		}
		end := strings.IndexByte(r, ';')
		if end < 0 {
			end = len(r)
		}
		f := strings.TrimRight(r[:end], " \t")
		fields = append(fields, f)
		rest = r[len(f):]
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("%w: no field after the version", ErrSyntax)
	}
	var rua []*url.URL
	seen := false
	for _, f := range fields {
		name, val, ok := strings.Cut(f, "=")
		if !ok || name == "" || val == "" {
			return nil, fmt.Errorf("%w: field %q is not name=value", ErrSyntax, f)
		}
		if name == "rua" {
			if seen {
				return nil, fmt.Errorf("%w: rua given twice", ErrSyntax)
			}
			seen = true
			u, err := parseRUA(val)
			if err != nil {
				return nil, err
			}
			rua = u
			continue
		}
		if !extName(name) || !extValue(val) {
			return nil, fmt.Errorf("%w: bad extension %q", ErrSyntax, f)
		}
	}
	if !seen {
		return nil, fmt.Errorf("%w: no rua", ErrSyntax)
	}
	if len(rua) == 0 {
		return nil, fmt.Errorf("%w: rua names no mailto: or https: URI", ErrSyntax)
	}
	return rua, nil
}

func parseRUA(val string) ([]*url.URL, error) {
	var out []*url.URL
	parts := strings.Split(val, ",")
	if len(parts) > MaxRUA {
		return nil, fmt.Errorf("%w: more than %d rua URIs", ErrSyntax, MaxRUA)
	}
	for _, p := range parts {
		p = strings.Trim(p, " \t")
		if p == "" || strings.ContainsAny(p, " \t;!") || !uriChars(p) {
			return nil, fmt.Errorf("%w: bad rua URI %q", ErrSyntax, p)
		}
		u, err := url.Parse(p)
		if err != nil || u.Scheme == "" {
			return nil, fmt.Errorf("%w: bad rua URI %q", ErrSyntax, p)
		}
		switch strings.ToLower(u.Scheme) {
		case "mailto":
			addr, err := url.PathUnescape(u.Opaque)
			if err != nil || u.Opaque == "" || u.RawQuery != "" || !mailbox(addr) {
				return nil, fmt.Errorf("%w: bad mailto URI %q", ErrSyntax, p)
			}
			u.Scheme = "mailto"
			out = append(out, u)
		case "https":
			if u.Host == "" || u.User != nil || u.Opaque != "" {
				return nil, fmt.Errorf("%w: bad https URI %q", ErrSyntax, p)
			}
			u.Scheme = "https"
			out = append(out, u)
		default:
			// §3: other schemes may be ignored.
		}
	}
	return out, nil
}

// Mailbox returns the address of a mailto: URI.
func Mailbox(u *url.URL) string {
	a, _ := url.PathUnescape(u.Opaque)
	return a
}

// mailbox is a plain local@domain with a dotted domain: what sluice can
// queue (no display name, no list, no IP literal).
func mailbox(a string) bool {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 || strings.Count(a, "@") != 1 {
		return false
	}
	d := a[at+1:]
	if !strings.Contains(d, ".") || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, "..") {
		return false
	}
	for _, c := range []byte(a) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("<>()[]\\,;:\"", c) >= 0 {
			return false
		}
	}
	return true
}

// uriChars: RFC 3986's character set (unreserved, reserved, '%').
func uriChars(s string) bool {
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~:/?#[]@!$&'()*+,;=%", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func extName(s string) bool {
	if len(s) > 32 || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z' || s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func extValue(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x21 || c > 0x7e || c == ';' || c == '=' {
			return false
		}
	}
	return true
}

// Lookup reads domain's TLS-RPT record at _smtp._tls.<domain> (RFC 8460
// §3): of the TXT records, those beginning with "v=TLSRPTv1" are kept;
// exactly one must remain and parse. A lookup that got no answer is
// returned as it is (temporary: retry later); ErrNoRecord or ErrSyntax
// mean the domain does not want reports now.
func Lookup(ctx context.Context, r Resolver, domain string) ([]*url.URL, error) {
	a, err := r.Lookup(ctx, "_smtp._tls."+strings.TrimSuffix(domain, "."), dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var recs []string
	for _, rr := range a.Records {
		t, ok := rr.(*dns.TXT)
		if !ok {
			continue
		}
		// One record's strings are one text (RFC 8460 §3: "concatenated").
		if s := strings.Join(t.Txt, ""); strings.HasPrefix(s, "v=TLSRPTv1") {
			recs = append(recs, s)
		}
	}
	if len(recs) != 1 {
		return nil, fmt.Errorf("%w (%d found)", ErrNoRecord, len(recs))
	}
	return ParseRecord(recs[0])
}
