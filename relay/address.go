package relay

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Address length limits of RFC 5321 §4.5.3.1: a local part of at most 64
// octets, a domain of at most 255, and a path of at most 256 octets
// including the angle brackets, hence 254 for the bare mailbox.
const (
	inMaxLocalLen   = 64
	inMaxDomainLen  = 255
	inMaxAddressLen = 254
	inMaxLabelLen   = 63
)

// ErrAddressSyntax is wrapped by every ParseAddress error.
var ErrAddressSyntax = errors.New("address syntax")

func inAddrErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrAddressSyntax, fmt.Sprintf(format, a...))
}

// ParseAddress parses an RFC 5321 §4.1.2 Mailbox, extended with UTF-8 as
// RFC 6531 §3.3 allows: Local-part "@" ( Domain / address-literal ).
//
// The local part is a Dot-string or a Quoted-string; CFWS, obsolete forms
// and RFC 5322-only domain literals are refused because they cannot appear
// in an SMTP envelope. local is returned as written (quotes kept), domain as
// written; the domain is everything after the last '@' and nothing else
// in the address (a '%' or '!' in the local part) is ever used for routing.
func ParseAddress(s string) (local, domain string, err error) {
	if !utf8.ValidString(s) {
		return "", "", inAddrErr("invalid UTF-8")
	}
	if len(s) > inMaxAddressLen {
		return "", "", inAddrErr("address longer than %d octets", inMaxAddressLen)
	}
	n, err := inScanLocal(s)
	if err != nil {
		return "", "", err
	}
	local = s[:n]
	if n == len(s) || s[n] != '@' {
		return "", "", inAddrErr("expected '@' after the local part")
	}
	domain = s[n+1:]
	if len(local) > inMaxLocalLen {
		return "", "", inAddrErr("local part longer than %d octets", inMaxLocalLen)
	}
	if strings.HasPrefix(domain, "[") {
		if err := inCheckAddressLiteral(domain); err != nil {
			return "", "", err
		}
		return local, domain, nil
	}
	if err := inCheckDomain(domain); err != nil {
		return "", "", err
	}
	return local, domain, nil
}

// inScanLocal returns the length of the local part at the start of s.
func inScanLocal(s string) (int, error) {
	if s == "" {
		return 0, inAddrErr("empty address")
	}
	if s[0] == '"' {
		return inScanQuoted(s)
	}
	i := 0
	atomLen := 0
	for i < len(s) && s[i] != '@' {
		c := s[i]
		switch {
		case c == '.':
			if atomLen == 0 {
				return 0, inAddrErr("empty atom in local part")
			}
			atomLen = 0
			i++
			continue
		case c >= utf8.RuneSelf:
			// RFC 6531 §3.3: atext =/ UTF8-non-ascii.
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
		case inIsAtext(c):
			i++
		default:
			return 0, inAddrErr("character %q not allowed in a dot-string", c)
		}
		atomLen++
	}
	if atomLen == 0 {
		return 0, inAddrErr("empty atom in local part")
	}
	return i, nil
}

// inScanQuoted scans a Quoted-string (RFC 5321 §4.1.2): qtextSMTP is
// %d32-33 / %d35-91 / %d93-126 and quoted-pairSMTP is "\" %d32-126.
func inScanQuoted(s string) (int, error) {
	for i := 1; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i+1 >= len(s) || s[i+1] < 32 || s[i+1] > 126 {
				return 0, inAddrErr("bad quoted-pair")
			}
			i += 2
		case c >= utf8.RuneSelf:
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
		case c >= 32 && c <= 126:
			i++
		default:
			return 0, inAddrErr("control character in quoted string")
		}
	}
	return 0, inAddrErr("unclosed quoted string")
}

// inIsAtext reports whether c is an RFC 5322 atext character.
func inIsAtext(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// inIsDotString reports whether s is a valid RFC 5321 Dot-string.
func inIsDotString(s string) bool {
	n, err := inScanLocal(s)
	return err == nil && n == len(s)
}

// inCheckDomain checks Domain = sub-domain *("." sub-domain), with
// sub-domain = Let-dig [Ldh-str] (RFC 5321 §4.1.2), U-labels allowed.
func inCheckDomain(d string) error {
	if d == "" {
		return inAddrErr("empty domain")
	}
	if len(d) > inMaxDomainLen {
		return inAddrErr("domain longer than %d octets", inMaxDomainLen)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" {
			return inAddrErr("empty label in domain")
		}
		if len(label) > inMaxLabelLen {
			return inAddrErr("label longer than %d octets", inMaxLabelLen)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return inAddrErr("label starts or ends with '-'")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if c >= utf8.RuneSelf || c == '-' ||
				c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
				continue
			}
			return inAddrErr("character %q not allowed in a domain", c)
		}
	}
	return nil
}

// inCheckAddressLiteral checks an RFC 5321 §4.1.3 address literal. Only the
// IPv4 form and the "IPv6:" tag are accepted: a General-address-literal
// needs a tag registered with IANA, and none but IPv6 is.
func inCheckAddressLiteral(d string) error {
	if len(d) < 3 || d[len(d)-1] != ']' {
		return inAddrErr("unclosed address literal")
	}
	lit := d[1 : len(d)-1]
	if rest, ok := strings.CutPrefix(lit, "IPv6:"); ok {
		if !inIsIPv6Literal(rest) {
			return inAddrErr("bad IPv6 address literal")
		}
		return nil
	}
	if !inIsIPv4Literal(lit) {
		return inAddrErr("bad address literal")
	}
	return nil
}

// inIsIPv4Literal: Snum 3("." Snum), Snum = 1*3DIGIT with a value 0-255.
func inIsIPv4Literal(s string) bool {
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

// inIsIPv6Literal implements IPv6-addr of RFC 5321 §4.1.3, which is
// stricter than netip: "::" stands for at least two groups, and at most 6
// groups (4 with a trailing IPv4 address) may appear besides it.
func inIsIPv6Literal(s string) bool {
	maxGroups := 8
	if i := strings.LastIndexByte(s, ':'); i >= 0 && strings.Contains(s[i+1:], ".") {
		if !inIsIPv4Literal(s[i+1:]) {
			return false
		}
		maxGroups = 6
		s = s[:i+1]
		if strings.HasSuffix(s, "::") {
			// IPv6v4-comp ending in "::" before the IPv4 part.
		} else {
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

// inIsAddressLiteral reports whether domain is an address literal.
func inIsAddressLiteral(domain string) bool {
	return strings.HasPrefix(domain, "[")
}

// inEnvelopeAddress turns an address as go-smtp hands it to Mail/Rcpt
// into our canonical RFC 5321 form. go-smtp has already removed the quotes
// of a Quoted-string and its backslashes, so "x@y"@d arrives as x@y@d: an
// address with more than one '@' is refused rather than guessed at, and a
// local part that is not a Dot-string is quoted again so that the stored
// envelope can be sent on as is.
func inEnvelopeAddress(addr string) (canon, domain string, err error) {
	if strings.Count(addr, "@") != 1 {
		return "", "", inAddrErr("address must contain exactly one '@'")
	}
	i := strings.LastIndexByte(addr, '@')
	local := addr[:i]
	if !inIsDotString(local) {
		var b strings.Builder
		b.WriteByte('"')
		for j := 0; j < len(local); j++ {
			c := local[j]
			if c < 32 || c == 127 {
				return "", "", inAddrErr("control character in local part")
			}
			if c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteByte('"')
		local = b.String()
	}
	canon = local + addr[i:]
	if _, domain, err = ParseAddress(canon); err != nil {
		return "", "", err
	}
	return canon, domain, nil
}

// inIsASCII reports whether s is pure US-ASCII (RFC 6531 §3.4: anything
// else needs the SMTPUTF8 parameter).
func inIsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
