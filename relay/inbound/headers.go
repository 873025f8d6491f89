package inbound

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// maxReceived is the hop count beyond which we call it a loop. RFC 5321
// §6.3 suggests a limit of at least 100 for relays; we use 30 as Postfix
// does by default, since a submission relay is normally hop one or two.
// The check runs at the end of DATA (554 5.4.6) rather than as a later
// bounce: the client is still there to be told, and nothing is queued.
const maxReceived = 30

// headerEndFrom returns the length of the header section of msg
// including its terminating empty line, or -1 if msg has no empty line.
// The search for CRLFCRLF starts at from: a caller reading in chunks has
// searched what came before.
func headerEndFrom(msg []byte, from int) int {
	if bytes.HasPrefix(msg, []byte("\r\n")) {
		return 2
	}
	if i := bytes.Index(msg[from:], []byte("\r\n\r\n")); i >= 0 {
		return from + i + 4
	}
	return -1
}

// headerNames returns the lower-cased field names of the header section
// (continuation lines, RFC 5322 §2.2.3, are skipped).
func headerNames(hdr []byte) []string {
	var names []string
	for _, line := range bytes.Split(hdr, []byte("\r\n")) {
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		if i := bytes.IndexByte(line, ':'); i > 0 {
			names = append(names, strings.ToLower(strings.TrimRight(string(line[:i]), " \t")))
		}
	}
	return names
}

// trace is what the Received: field records.
type trace struct {
	Helo     string
	Client   netip.Addr
	Hostname string
	Protocol string // RFC 3848: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA
	ID       string
	Rcpt     string // set only for a single recipient (RFC 5321 §4.4)
	Date     time.Time
}

// protocol picks the RFC 3848 "with" keyword.
func protocol(ehlo, tls, auth bool) string {
	if !ehlo {
		return "SMTP"
	}
	p := "ESMTP"
	if tls {
		p += "S"
	}
	if auth {
		p += "A"
	}
	return p
}

// received formats the trace field of RFC 5321 §4.4. We do no reverse DNS
// lookup, so TCP-info is the bare address literal.
func (t trace) received() string {
	helo := t.Helo
	if helo == "" {
		helo = "unknown"
	}
	lit := t.Client.String()
	if t.Client.Is6() {
		lit = "IPv6:" + lit
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s with %s id %s", helo, lit, t.Hostname, t.Protocol, t.ID)
	if t.Rcpt != "" {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", t.Rcpt)
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", t.Date.Format(time.RFC1123Z))
	return b.String()
}

// prepareHeader returns the header section as stored: our Received:
// field first, and Message-ID: and Date: added when missing (RFC 5322
// §3.6 requires Date; large receivers refuse mail without a Message-ID).
// hdr is the header section as received, with the empty line that ends
// it when ended is true, else the whole of a headers-only message. It
// also returns the number of Received: fields the message arrived with.
func prepareHeader(hdr []byte, ended bool, t trace) ([]byte, int) {
	received := 0
	hasID, hasDate := false, false
	for _, n := range headerNames(hdr) {
		switch n {
		case "received":
			received++
		case "message-id":
			hasID = true
		case "date":
			hasDate = true
		}
	}
	var add strings.Builder
	if !hasID {
		fmt.Fprintf(&add, "Message-ID: <%s@%s>\r\n", randomID(), t.Hostname)
	}
	if !hasDate {
		fmt.Fprintf(&add, "Date: %s\r\n", t.Date.Format(time.RFC1123Z))
	}
	rcv := t.received()
	out := make([]byte, 0, len(rcv)+len(hdr)+add.Len()+2)
	out = append(out, rcv...)
	switch {
	case ended:
		// Insert before the empty line that ends the header section.
		out = append(out, hdr[:len(hdr)-2]...)
		out = append(out, add.String()...)
		out = append(out, hdr[len(hdr)-2:]...)
	default:
		// Headers only, no body: keep what came and terminate it.
		out = append(out, hdr...)
		if len(hdr) > 0 && !bytes.HasSuffix(hdr, []byte("\r\n")) {
			out = append(out, "\r\n"...)
		}
		out = append(out, add.String()...)
	}
	return out, received
}

// randomID returns 16 random bytes in hex, for Message-ID and trace ids.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
