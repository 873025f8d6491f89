// Package mtasts implements SMTP MTA Strict Transport Security (RFC
// 8461) for outbound delivery: the _mta-sts TXT record, the policy
// fetched over HTTPS with full certificate validation, its strict
// parser, MX host matching, and a cache that follows max_age, persists
// in the queue file and survives a failed refresh. Cache.TLSFor plugs it
// into the outbound client's TLS precedence (outbound.TLSSource).
package mtasts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Mode is a policy's mode (RFC 8461 §5).
type Mode string

const (
	ModeEnforce Mode = "enforce" // deliver only to matching MX hosts over verified TLS
	ModeTesting Mode = "testing" // report failures, deliver anyway
	ModeNone    Mode = "none"    // the domain has withdrawn its policy
)

// Limits of RFC 8461 §3.2 and §3.3.
const (
	MaxAgeLimit   = 31557600 // seconds: one year, max_age's ceiling (§3.2)
	MaxPolicySize = 64 << 10 // bytes: the policy body's ceiling (§3.3: 64 KiB)
)

// Policy is one parsed policy (RFC 8461 §3.2).
type Policy struct {
	Mode   Mode
	MX     []string // patterns, lower case: "mail.example.com", "*.example.net"
	MaxAge time.Duration
}

// ErrSyntax marks a record or policy that does not follow the RFC's ABNF.
var ErrSyntax = errors.New("mtasts: syntax")

func syntaxErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSyntax, fmt.Sprintf(format, args...))
}

// ParseRecord reads one _mta-sts TXT record (RFC 8461 §3.1) and returns
// its id:
//
//	sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
//	sts-version     = %s"v=STSv1"
//	sts-field       = sts-id / sts-extension
//	sts-field-delim = *WSP ";" *WSP
//	sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
//	sts-extension   = sts-ext-name "=" sts-ext-value
//	sts-ext-name    = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
//	sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)
func ParseRecord(txt string) (id string, err error) {
	fields := strings.Split(txt, ";")
	if strings.TrimRight(fields[0], " \t") != "v=STSv1" {
		return "", syntaxErr("record does not begin with v=STSv1")
	}
	fields = fields[1:]
	if n := len(fields); n > 0 && strings.Trim(fields[n-1], " \t") == "" {
		fields = fields[:n-1] // the optional trailing delimiter
	}
	if len(fields) == 0 {
		return "", syntaxErr("record has no id")
	}
	for _, f := range fields {
		f = strings.Trim(f, " \t")
		name, value, ok := strings.Cut(f, "=")
		if !ok || !extName(name) || value == "" {
			return "", syntaxErr("malformed field %q", f)
		}
		for i := 0; i < len(value); i++ {
			if c := value[i]; c < 0x21 || c > 0x7e || c == '=' {
				return "", syntaxErr("malformed value in %q", f)
			}
		}
		if name != "id" {
			continue // an extension: ignored (§3.1)
		}
		if id != "" {
			return "", syntaxErr("more than one id")
		}
		if len(value) > 32 || !alnum(value) {
			return "", syntaxErr("id %q is not 1 to 32 letters and digits", value)
		}
		id = value
	}
	if id == "" {
		return "", syntaxErr("record has no id")
	}
	return id, nil
}

// ParsePolicy reads a policy body (RFC 8461 §3.2):
//
//	sts-policy-record        = sts-policy-field *WSP
//	                           *(sts-policy-term-delim *WSP sts-policy-field *WSP)
//	                           [sts-policy-term-delim *WSP]
//	sts-policy-field         = sts-policy-version / sts-policy-mode /
//	                           sts-policy-max-age / sts-policy-mx / sts-policy-extension
//	sts-policy-field-delim   = ":" *WSP
//	sts-policy-version       = %s"version" sts-policy-field-delim %s"STSv1"
//	sts-policy-mode          = %s"mode" sts-policy-field-delim ("testing" / "enforce" / "none")
//	sts-policy-mx            = %s"mx" sts-policy-field-delim sts-policy-mx-value
//	sts-policy-mx-value      = ["*."] Domain
//	sts-policy-max-age       = %s"max_age" sts-policy-field-delim 1*10DIGIT
//	sts-policy-extension     = sts-policy-ext-name sts-policy-field-delim sts-policy-ext-value
//	sts-policy-ext-name      = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
//	sts-policy-ext-value     = sts-policy-vchar *(*WSP sts-policy-vchar)
//	sts-policy-term-delim    = CRLF / LF
//
// version, mode and max_age are required; when one is repeated, the
// first is used and the others are ignored (§3.2: "If any non-repeated
// field ... is duplicated, all entries except for the first SHALL be
// ignored"; a repeated line must still be a field, name: value); mx is
// required unless mode is none (one or more); max_age is at most
// MaxAgeLimit; extensions are ignored.
func ParsePolicy(body []byte) (*Policy, error) {
	if len(body) > MaxPolicySize {
		return nil, syntaxErr("policy larger than %d bytes", MaxPolicySize)
	}
	s := string(body)
	lines := strings.Split(s, "\n")
	if n := len(lines); n > 1 && strings.Trim(lines[n-1], " \t") == "" {
		lines = lines[:n-1] // the optional final delimiter and its WSP
	}
	var p Policy
	var version, mode, maxAge bool
	for i, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		if strings.ContainsRune(line, '\r') {
			return nil, syntaxErr("line %d: stray CR", i+1)
		}
		// *WSP after a field; none before one (the ABNF puts WSP after
		// each delimiter, so leading WSP is allowed too).
		line = strings.Trim(line, " \t")
		name, value, ok := strings.Cut(line, ":")
		if !ok || !extName(name) {
			return nil, syntaxErr("line %d: not a field: %q", i+1, line)
		}
		value = strings.TrimLeft(value, " \t")
		if !vchars(value) {
			return nil, syntaxErr("line %d: bad value for %s", i+1, name)
		}
		switch name {
		case "version":
			if version {
				continue // §3.2: the first one counts
			}
			if value != "STSv1" {
				return nil, syntaxErr("line %d: version %q is not STSv1", i+1, value)
			}
			version = true
		case "mode":
			if mode {
				continue
			}
			switch Mode(value) {
			case ModeEnforce, ModeTesting, ModeNone:
				p.Mode = Mode(value)
			default:
				return nil, syntaxErr("line %d: mode %q", i+1, value)
			}
			mode = true
		case "max_age":
			if maxAge {
				continue
			}
			if len(value) < 1 || len(value) > 10 || !digits(value) {
				return nil, syntaxErr("line %d: max_age %q is not 1 to 10 digits", i+1, value)
			}
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n > MaxAgeLimit {
				return nil, syntaxErr("line %d: max_age %s above %d", i+1, value, MaxAgeLimit)
			}
			p.MaxAge = time.Duration(n) * time.Second
			maxAge = true
		case "mx":
			pat := strings.ToLower(value)
			if !mxPattern(pat) {
				return nil, syntaxErr("line %d: mx %q is not a host name or *.host name", i+1, value)
			}
			p.MX = append(p.MX, pat)
		default:
			// An extension: ignored (§3.2: "Unknown fields MUST be
			// ignored to allow for future extension").
			if value == "" {
				return nil, syntaxErr("line %d: empty value for %s", i+1, name)
			}
		}
	}
	switch {
	case !version:
		return nil, syntaxErr("no version")
	case !mode:
		return nil, syntaxErr("no mode")
	case !maxAge:
		return nil, syntaxErr("no max_age")
	case len(p.MX) == 0 && p.Mode != ModeNone:
		return nil, syntaxErr("no mx in a policy in %s mode", p.Mode)
	}
	return &p, nil
}

// Match reports whether host (an MX host name) matches one of the
// policy's patterns (RFC 8461 §4.1): exactly, case-insensitively, or
// through a wildcard "*." that stands for exactly one left-most label
// ("*.example.com" matches "mx1.example.com", not "example.com" nor
// "a.b.example.com").
func (p *Policy) Match(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, pat := range p.MX {
		if suffix, ok := strings.CutPrefix(pat, "*."); ok {
			label, rest, found := strings.Cut(host, ".")
			if found && label != "" && rest == suffix {
				return true
			}
			continue
		}
		if host == pat {
			return true
		}
	}
	return false
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// extName: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".").
func extName(s string) bool {
	if s == "" || len(s) > 32 || !alnum(s[:1]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !alnum(s[i:i+1]) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// vchars: sts-policy-vchar *(*WSP sts-policy-vchar), or empty (the
// caller decides whether a field may be empty).
func vchars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 0x21 || c > 0x7e) && c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

// mxPattern: ["*."] Domain, a host name of letter-digit-hyphen labels
// (underscores tolerated, as in the ABNF's characters), each 1 to 63
// octets, at most 253 in all.
func mxPattern(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Lines is the policy as RFC 8460 §4.4's "policy-string" carries it:
// one string per line of the policy (RFC 8461 §3.2), in a canonical
// order (the fields sluice keeps; extensions are not).
func (p *Policy) Lines() []string {
	out := []string{"version: STSv1", "mode: " + string(p.Mode)}
	for _, mx := range p.MX {
		out = append(out, "mx: "+mx)
	}
	return append(out, "max_age: "+strconv.FormatInt(int64(p.MaxAge/time.Second), 10))
}
