package mailbox

import (
	"fmt"
	"strings"
)

func pathErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrPathSyntax, fmt.Sprintf(format, a...))
}

// ParsePath parses the path at the start of the argument of MAIL FROM: or
// RCPT TO: (RFC 5321 §4.1.2):
//
//	Path = "<" [ A-d-l ":" ] Mailbox ">"
//	A-d-l = At-domain *( "," At-domain ), At-domain = "@" Domain
//
// A source route is checked and dropped (RFC 5321 Appendix C lets a server
// ignore it; we never route on it). Like go-smtp and Postfix it also takes
// a mailbox without angle brackets, ended by a space. n is the length of
// the path in s; what follows it must be empty or begin with a space (the
// ESMTP parameters). The null path "<>" is not a Mailbox: callers that
// accept it (MAIL FROM) test for it first.
//
// Errors wrap ErrSyntax when the mailbox is malformed and ErrPathSyntax
// when what surrounds it is.
func ParsePath(s string) (m Mailbox, n int, err error) {
	i := 0
	bracket := strings.HasPrefix(s, "<")
	if bracket {
		i = 1
		if strings.HasPrefix(s[i:], "@") {
			end := strings.IndexByte(s[i:], ':')
			if end < 0 {
				return Mailbox{}, 0, pathErr("source route without ':'")
			}
			for _, hop := range strings.Split(s[i:i+end], ",") {
				d, ok := strings.CutPrefix(hop, "@")
				// RFC 821 allowed an address literal here too.
				if !ok || checkDomainOrLiteral(d) != nil {
					return Mailbox{}, 0, pathErr("bad source route")
				}
			}
			i += end + 1
		}
	}
	start := i
	// The local part decides where the mailbox can end: a Quoted-string
	// may hold '>', '@' and spaces.
	if strings.HasPrefix(s[i:], `"`) {
		_, ln, err := scanQuoted(s[i:])
		if err != nil {
			return Mailbox{}, 0, err
		}
		i += ln
	}
	for i < len(s) && s[i] != '>' && s[i] != ' ' && s[i] != '\t' {
		i++
	}
	m, err = Parse(s[start:i])
	if err != nil {
		return Mailbox{}, 0, err
	}
	if bracket {
		if i == len(s) || s[i] != '>' {
			return Mailbox{}, 0, pathErr("missing '>'")
		}
		i++
	}
	if i < len(s) && s[i] != ' ' && s[i] != '\t' {
		return Mailbox{}, 0, pathErr("text after the path")
	}
	return m, i, nil
}
