package dsn

import (
	"errors"
	"fmt"
	"strings"
)

// The DSN extension (RFC 3461): what a client asks at MAIL and RCPT about
// the notifications it wants. The relay keeps these with the message and
// honours them in the DSNs it generates, or passes them on to a next hop
// that supports DSN.

// Notify is the RCPT NOTIFY parameter (RFC 3461 §4.1) as a set; zero
// means the parameter was not given.
type Notify uint8

const (
	NotifySuccess Notify = 1 << iota
	NotifyFailure
	NotifyDelay
	NotifyNever
)

var errNotify = errors.New("dsn: NOTIFY is NEVER or a list of SUCCESS, FAILURE and DELAY")

// ParseNotify reads the values of NOTIFY (case-insensitive). NEVER may
// not be combined with another value (RFC 3461 §4.1).
func ParseNotify(vals []string) (Notify, error) {
	var n Notify
	for _, v := range vals {
		switch strings.ToUpper(strings.TrimSpace(v)) {
		case "SUCCESS":
			n |= NotifySuccess
		case "FAILURE":
			n |= NotifyFailure
		case "DELAY":
			n |= NotifyDelay
		case "NEVER":
			n |= NotifyNever
		default:
			return 0, errNotify
		}
	}
	if n&NotifyNever != 0 && n != NotifyNever {
		return 0, errNotify
	}
	return n, nil
}

// Valid reports a set that ParseNotify could return (zero included).
func (n Notify) Valid() bool {
	return n < NotifyNever<<1 && (n&NotifyNever == 0 || n == NotifyNever)
}

// String is the parameter's value, "SUCCESS,FAILURE,DELAY" order, or ""
// for zero.
func (n Notify) String() string {
	var out []string
	for _, p := range []struct {
		bit  Notify
		name string
	}{{NotifyNever, "NEVER"}, {NotifySuccess, "SUCCESS"}, {NotifyFailure, "FAILURE"}, {NotifyDelay, "DELAY"}} {
		if n&p.bit != 0 {
			out = append(out, p.name)
		}
	}
	return strings.Join(out, ",")
}

// Failure reports whether a failure DSN is wanted. Without NOTIFY the
// relay reports failures and delays (RFC 3461 §4.1: the default is
// "FAILURE" or "FAILURE,DELAY", the latter as Postfix and Sendmail do).
func (n Notify) Failure() bool { return n == 0 || n&NotifyFailure != 0 }

// Delay reports whether a delay notice is wanted.
func (n Notify) Delay() bool { return n == 0 || n&NotifyDelay != 0 }

// Success reports whether a success DSN is wanted: only when asked.
func (n Notify) Success() bool { return n&NotifySuccess != 0 }

// Ret is the MAIL RET parameter (RFC 3461 §4.3): what a failure DSN
// returns of the message. "" = not given.
type Ret string

const (
	RetFull Ret = "FULL"
	RetHdrs Ret = "HDRS"
)

// Envelope is the per-message DSN parameters given at MAIL.
type Envelope struct {
	Ret   Ret
	EnvID string // ENVID (RFC 3461 §4.4), xtext-decoded; printable ASCII
}

// Rcpt is the per-recipient DSN parameters given at RCPT.
type Rcpt struct {
	Notify Notify
	// ORcpt is ORCPT (RFC 3461 §4.2) decoded: "rfc822;addr" or
	// "utf-8;addr" (RFC 6533); "" = not given.
	ORcpt string
}

// XText encodes s as xtext (RFC 3461 §4): printable ASCII other than
// "+" and "=" as is, anything else as "+HH".
func XText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '!' && c <= '~' && c != '+' && c != '=' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "+%02X", c)
		}
	}
	return b.String()
}

// ORcptParam is the ORCPT value to pass on at RCPT: the address type,
// ";" and the address as xtext (rfc822) or utf-8-addr-xtext (RFC 6533
// §3); "" when o is not a typed address.
func ORcptParam(o string) string {
	typ, addr, ok := strings.Cut(o, ";")
	if !ok || typ == "" || addr == "" {
		return ""
	}
	if strings.EqualFold(typ, "utf-8") {
		return "utf-8;" + utf8AddrXText(addr)
	}
	return typ + ";" + XText(addr)
}

// originalRecipient is the Original-Recipient field (RFC 3464 §2.3.1):
// the address type and the address as the client gave it, 7-bit.
func originalRecipient(o string) string {
	typ, addr, ok := strings.Cut(clean(o), ";")
	if !ok || strings.TrimSpace(typ) == "" || strings.TrimSpace(addr) == "" {
		return ""
	}
	typ, addr = strings.TrimSpace(typ), strings.TrimSpace(addr)
	if isASCII([]byte(addr)) {
		return ascii(typ) + ";" + addr
	}
	return "utf-8;" + utf8AddrXText(addr)
}

// utf8AddrXText writes every character outside QCHAR as \x{HEX}
// (RFC 6533 §3), which keeps it 7-bit and lossless.
func utf8AddrXText(addr string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(addr, "\uFFFD") {
		if r >= 0x21 && r <= 0x7e && r != '+' && r != '=' && r != '\\' {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, `\x{%X}`, r)
		}
	}
	return b.String()
}
