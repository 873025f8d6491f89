package inbound

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"

	"sluice/mailbox"
)

// Envelope paths are parsed here, on the raw command line, and not by
// go-smtp: its parser drops the quotes and backslashes of a Quoted-string
// before Mail/Rcpt see the address, so `"x@y"@d` arrives as x@y@d and
// `"a\"b"@d` as a"b@d (neither can be told from other addresses), and it
// refuses `""@d` itself. So the conn wrapper parses every MAIL FROM and
// RCPT TO path with package mailbox and hands go-smtp a stand-in path
// that its parser passes through untouched:
//
//	<KEY.BASE64URL(local part)@domain>
//
// KEY is random per server, so a client cannot forge a stand-in: an
// address reaching Mail/Rcpt without it was not rewritten and is refused.
// A path that does not parse becomes <KEY!a@invalid> (bad address) or
// <KEY!p@invalid> (bad path), refused in Mail/Rcpt with our own reply,
// and its parameters are dropped. A line longer than the conn holds back
// is longer than go-smtp's line limit, which refuses it.

// newPathKey returns the stand-in prefix of one server.
func newPathKey() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "."
}

// rewritePath returns line (a complete MAIL or RCPT command line, CRLF
// included) with its path replaced by a stand-in, or line itself when
// go-smtp will refuse the line before it calls Mail/Rcpt anyway (no
// "FROM:" or "TO:"), or for the null path of MAIL, which go-smtp reads
// correctly. err says why a path was refused, for the log.
func (s *Server) rewritePath(line []byte, mail bool) (_ []byte, err error) {
	// Read the line the way go-smtp's parseCmd and handleMail/handleRcpt
	// do, so that both agree on where the path is.
	str := strings.TrimRight(string(line), "\r\n")
	if len(str) <= 5 {
		return line, nil
	}
	prefix := "TO:"
	if mail {
		prefix = "FROM:"
	}
	arg := strings.TrimSpace(str[5:])
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return line, nil
	}
	rest := strings.TrimSpace(arg[len(prefix):])
	if mail && strings.HasPrefix(rest, "<>") {
		return line, nil
	}
	var b bytes.Buffer
	b.Grow(len(line) + 32)
	b.WriteString(str[:5])
	b.WriteString(prefix)
	b.WriteByte('<')
	b.WriteString(s.pathKey)
	m, n, err := mailbox.ParsePath(rest)
	switch {
	case err == nil:
		b.WriteString(base64.RawURLEncoding.EncodeToString([]byte(m.Local)))
		b.WriteByte('@')
		b.WriteString(m.Domain)
		b.WriteByte('>')
		b.WriteString(rest[n:])
	case errors.Is(err, mailbox.ErrPathSyntax):
		b.WriteString("!p@invalid>")
	default:
		b.WriteString("!a@invalid>")
	}
	b.WriteString("\r\n")
	return b.Bytes(), err
}

// Why a stand-in path carries no address.
var (
	errPathSyntax = errors.New("relay: path syntax")
	errPathForged = errors.New("relay: path was not rewritten by the conn")
)

// envelopeAddress turns the stand-in go-smtp hands to Mail/Rcpt back into
// the mailbox the client sent. Errors wrap mailbox.ErrSyntax (a malformed
// address), errPathSyntax (a malformed path) or errPathForged.
func (s *Server) envelopeAddress(addr string) (mailbox.Mailbox, error) {
	at := strings.LastIndexByte(addr, '@')
	tok, ok := strings.CutPrefix(addr[:max(at, 0)], s.pathKey)
	if at < 0 || !ok {
		return mailbox.Mailbox{}, errPathForged
	}
	switch tok {
	case "!p":
		return mailbox.Mailbox{}, errPathSyntax
	case "!a":
		return mailbox.Mailbox{}, mailbox.ErrSyntax
	}
	local, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return mailbox.Mailbox{}, errPathForged
	}
	return mailbox.Mailbox{Local: string(local), Domain: addr[at+1:]}, nil
}
