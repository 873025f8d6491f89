// Package mailbox parses and prints envelope addresses: the Mailbox of
// RFC 5321 §4.1.2, extended with UTF-8 as RFC 6531 §3.3 allows, and the
// Path around it in MAIL FROM and RCPT TO.
//
// A Mailbox keeps the local part's content (quotes and quoted-pair
// backslashes removed) apart from its domain, so that one address has one
// canonical form (String): the local part as a Dot-string when it is one,
// else as a Quoted-string with only '"' and '\' escaped. That form is what
// sluice stores, writes in MAIL FROM/RCPT TO and DSNs, and keys its
// suppression list on; `"john"@example.org` and `john@example.org` are one
// address, `"john@doe"@example.org` is another.
//
// The domain is what follows the last '@': a quoted local part may hold
// '@' itself, and nothing else in an address (a '%' or '!' in the local
// part, a source route) is ever a routing instruction. All functions are
// pure and safe for concurrent use.
package mailbox

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Length limits of RFC 5321 §4.5.3.1: a local part of at most 64 octets, a
// domain of at most 255, a path of at most 256 octets including the angle
// brackets, hence 254 for the bare mailbox.
const (
	MaxLocalLen   = 64
	MaxDomainLen  = 255
	MaxAddressLen = 254
	maxLabelLen   = 63
)

// ErrSyntax is wrapped by every error about a mailbox.
var ErrSyntax = errors.New("address syntax")

// ErrPathSyntax is wrapped by the errors of ParsePath about what surrounds
// the mailbox: angle brackets, a source route, text after the path.
var ErrPathSyntax = errors.New("path syntax")

func syntaxErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrSyntax, fmt.Sprintf(format, a...))
}

// Mailbox is an envelope address.
type Mailbox struct {
	// Local is the local part's content: for a Quoted-string, without
	// the quotes and with each quoted-pair resolved (`"a\"b"` is a"b).
	// It may be empty (`""@example.org` is valid). Local parts are
	// case-sensitive (RFC 5321 §2.4) and kept as written.
	Local string
	// Domain is a domain name (U-labels allowed) or an address literal
	// such as "[192.0.2.1]" or "[IPv6:2001:db8::1]", as written.
	Domain string
}

// String returns the canonical RFC 5321 form of m.
func (m Mailbox) String() string {
	return QuoteLocal(m.Local) + "@" + m.Domain
}

// IsLiteral reports whether the domain is an address literal.
func (m Mailbox) IsLiteral() bool { return strings.HasPrefix(m.Domain, "[") }

// QuoteLocal writes a local part's content as RFC 5321 wants it on the
// wire: as is when it is a Dot-string, else as a Quoted-string in which
// only '"' and '\' are escaped (every other character of a valid local
// part is qtextSMTP). Postfix quotes the same way
// (smtp_quote_rfc821_envelope), so a legacy "first..last" goes out as
// "\"first..last\"".
func QuoteLocal(local string) string {
	if IsDotString(local) {
		return local
	}
	var b strings.Builder
	b.Grow(len(local) + 2)
	b.WriteByte('"')
	for i := 0; i < len(local); i++ {
		if c := local[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(local[i])
	}
	b.WriteByte('"')
	return b.String()
}

// Canonical parses s and returns its canonical form.
func Canonical(s string) (string, error) {
	m, err := Parse(s)
	if err != nil {
		return "", err
	}
	return m.String(), nil
}

// Parse parses a Mailbox: Local-part "@" ( Domain / address-literal ),
// Local-part = Dot-string / Quoted-string (RFC 5321 §4.1.2).
//
// Beyond the grammar it accepts, as Postfix does, an unquoted local part
// whose dots are misplaced ("first..last", "taro.", ".x": addresses some
// mobile carriers handed out); String quotes such a local part. CFWS,
// obsolete forms and RFC 5322 domain literals are refused: they cannot
// appear in an SMTP envelope.
func Parse(s string) (Mailbox, error) {
	if !utf8.ValidString(s) {
		return Mailbox{}, syntaxErr("invalid UTF-8")
	}
	if len(s) > MaxAddressLen {
		return Mailbox{}, syntaxErr("address longer than %d octets", MaxAddressLen)
	}
	local, n, err := scanLocal(s)
	if err != nil {
		return Mailbox{}, err
	}
	if n > MaxLocalLen {
		return Mailbox{}, syntaxErr("local part longer than %d octets", MaxLocalLen)
	}
	if n == len(s) || s[n] != '@' {
		return Mailbox{}, syntaxErr("expected '@' after the local part")
	}
	domain := s[n+1:]
	if err := checkDomainOrLiteral(domain); err != nil {
		return Mailbox{}, err
	}
	return Mailbox{Local: local, Domain: domain}, nil
}

// scanLocal reads the local part at the start of s; it returns its
// content and the number of bytes it took.
func scanLocal(s string) (string, int, error) {
	if s == "" {
		return "", 0, syntaxErr("empty address")
	}
	if s[0] == '"' {
		return scanQuoted(s)
	}
	i := 0
	for i < len(s) && s[i] != '@' {
		c := s[i]
		switch {
		case c == '.' || isAtext(c):
			i++
		case c >= utf8.RuneSelf:
			// RFC 6531 §3.3: atext =/ UTF8-non-ascii.
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
		default:
			return "", 0, syntaxErr("character %q not allowed in an unquoted local part", c)
		}
	}
	if i == 0 {
		return "", 0, syntaxErr("empty local part")
	}
	return s[:i], i, nil
}

// scanQuoted reads a Quoted-string (RFC 5321 §4.1.2): qtextSMTP is
// %d32-33 / %d35-91 / %d93-126 (and UTF8-non-ascii, RFC 6531 §3.3),
// quoted-pairSMTP is "\" %d32-126.
func scanQuoted(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), i + 1, nil
		case c == '\\':
			if i+1 >= len(s) || s[i+1] < 32 || s[i+1] > 126 {
				return "", 0, syntaxErr("bad quoted-pair")
			}
			b.WriteByte(s[i+1])
			i += 2
		case c >= utf8.RuneSelf:
			_, size := utf8.DecodeRuneInString(s[i:])
			b.WriteString(s[i : i+size])
			i += size
		case c >= 32 && c <= 126:
			b.WriteByte(c)
			i++
		default:
			return "", 0, syntaxErr("control character in a quoted local part")
		}
	}
	return "", 0, syntaxErr("unclosed quoted string")
}

// isAtext reports whether c is an RFC 5322 atext character (ASCII).
func isAtext(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// IsDotString reports whether s is a Dot-string: Atom *("." Atom), atoms
// of atext or UTF-8 (RFC 5321 §4.1.2, RFC 6531 §3.3).
func IsDotString(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && !isAtext(c) && c < utf8.RuneSelf {
			return false
		}
	}
	return utf8.ValidString(s)
}

func checkDomainOrLiteral(d string) error {
	if strings.HasPrefix(d, "[") {
		return checkAddressLiteral(d)
	}
	return checkDomain(d)
}

// checkDomain checks Domain = sub-domain *("." sub-domain), sub-domain =
// Let-dig [Ldh-str] (RFC 5321 §4.1.2), U-labels allowed (RFC 6531 §3.3).
func checkDomain(d string) error {
	if d == "" {
		return syntaxErr("empty domain")
	}
	if len(d) > MaxDomainLen {
		return syntaxErr("domain longer than %d octets", MaxDomainLen)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" {
			return syntaxErr("empty label in domain")
		}
		if len(label) > maxLabelLen {
			return syntaxErr("label longer than %d octets", maxLabelLen)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return syntaxErr("label starts or ends with '-'")
		}
		for _, r := range label {
			switch {
			case r == '-', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			case r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)):
				// A U-label character (RFC 6531 §3.3, IDNA2008 PVALID is
				// letters, digits and marks); never a control or format
				// character such as U+202E.
			default:
				return syntaxErr("character %q not allowed in a domain", r)
			}
		}
	}
	return nil
}

// checkAddressLiteral checks an RFC 5321 §4.1.3 address literal. Only the
// IPv4 form and the "IPv6:" tag are accepted: a General-address-literal
// needs a tag registered with IANA, and none but IPv6 is.
func checkAddressLiteral(d string) error {
	if len(d) < 3 || d[len(d)-1] != ']' {
		return syntaxErr("unclosed address literal")
	}
	lit := d[1 : len(d)-1]
	if rest, ok := strings.CutPrefix(lit, "IPv6:"); ok {
		if !isIPv6Literal(rest) {
			return syntaxErr("bad IPv6 address literal")
		}
		return nil
	}
	if !isIPv4Literal(lit) {
		return syntaxErr("bad address literal")
	}
	return nil
}

// isIPv4Literal: Snum 3("." Snum), Snum = 1*3DIGIT with a value 0-255.
func isIPv4Literal(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if len(p) == 0 || len(p) > 3 {
			return false
		}
		v := 0
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
			v = v*10 + int(p[i]-'0')
		}
		if v > 255 {
			return false
		}
	}
	return true
}

// isIPv6Literal implements IPv6-addr of RFC 5321 §4.1.3, which is stricter
// than netip: "::" stands for at least two groups, and at most 6 groups (4
// with a trailing IPv4 address) may appear besides it.
func isIPv6Literal(s string) bool {
	maxGroups := 8
	if i := strings.LastIndexByte(s, ':'); i >= 0 && strings.Contains(s[i+1:], ".") {
		if !isIPv4Literal(s[i+1:]) {
			return false
		}
		maxGroups = 6
		s = s[:i+1]
		if !strings.HasSuffix(s, "::") {
			s = s[:len(s)-1]
		}
	}
	countGroups := func(part string) (int, bool) {
		if part == "" {
			return 0, true
		}
		groups := strings.Split(part, ":")
		for _, g := range groups {
			if len(g) == 0 || len(g) > 4 {
				return 0, false
			}
			for i := 0; i < len(g); i++ {
				c := g[i]
				if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
					return 0, false
				}
			}
		}
		return len(groups), true
	}
	head, tail, comp := strings.Cut(s, "::")
	if !comp {
		n, ok := countGroups(s)
		return ok && n == maxGroups
	}
	if strings.Contains(tail, "::") {
		return false
	}
	nh, ok1 := countGroups(head)
	nt, ok2 := countGroups(tail)
	return ok1 && ok2 && nh+nt <= maxGroups-2
}
