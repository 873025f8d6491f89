// Package dsn builds delivery status notifications (bounces and delay
// warnings) as RFC 3464 multipart/report messages (RFC 6522).
//
// Build is a pure function of its Report (apart from a random Message-ID
// when none is given): it does no I/O and is safe to call concurrently.
// Its output is ready for SMTP: CRLF line endings only, no line longer
// than 998 octets (RFC 5322 §2.1.1), 7-bit except for a UTF-8 sender
// address in To: and a returned original (or header section) that was
// itself 8-bit (both then need SMTPUTF8/8BITMIME downstream), and every
// interpolated value stripped of CR and LF so that no field can inject a
// header. The original is returned whole only up to ReturnLimit bytes.
package dsn

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Recipient is the outcome for one recipient of the original message.
type Recipient struct {
	Addr        string
	Action      string // "failed", "delayed", "delivered" or "relayed" (RFC 3464 §2.3.3)
	Status      string // RFC 3463 code, e.g. "5.1.1"; invalid or "" = 5.0.0 / 4.0.0 / 2.0.0 by Action
	ORcpt       string // ORCPT as given at RCPT ("rfc822;addr"): the Original-Recipient field; "" = none
	RemoteMTA   string // host name of the receiver that answered; "" = none (e.g. no MX)
	Diagnostic  string // the full reply line, e.g. "550 5.1.1 <a@b>: user unknown"
	LastAttempt time.Time
}

// Report describes one DSN to send back to the envelope sender.
type Report struct {
	ReportingMTA string // our hostname
	Sender       string // envelope sender of the original: the DSN goes to it
	QueueID      string
	EnvID        string // ENVID given at MAIL: the Original-Envelope-Id field (RFC 3464 §2.2.1)
	// Ret is RET given at MAIL: HDRS returns the header section only,
	// even of a small original (RFC 3461 §4.3). A DSN that reports no
	// failure returns the header section only whatever Ret says: the
	// message arrived, or will be retried.
	Ret        Ret
	Arrival    time.Time
	Recipients []Recipient
	// Original is the original message, or its beginning holding at
	// least its header section (see ReadOriginal). It is returned whole
	// (message/rfc822) when it is complete and at most ReturnLimit
	// bytes, else as its header section only (text/rfc822-headers).
	Original []byte
	// OriginalSize is the size of the whole original; 0 means
	// len(Original).
	OriginalSize int64
	// OriginalUnavailable, when not empty, says why the original message
	// could not be read (e.g. its body is gone from the queue). The
	// notification then says so to the sender, in its human-readable
	// part, instead of silently leaving out the returned headers.
	OriginalUnavailable string
	Now                 time.Time
	MessageID           string // Message-ID of the DSN itself; "" = <random@ReportingMTA>
}

// Errors returned by Build.
var (
	// ErrNullSender: a DSN is never sent to the null reverse-path, so that
	// two systems cannot bounce bounces at each other (RFC 5321 §6.1,
	// RFC 3461 §6.2).
	ErrNullSender   = errors.New("dsn: no DSN for the null sender")
	ErrNoRecipients = errors.New("dsn: no recipients")
	ErrBadAction    = errors.New("dsn: action must be \"failed\", \"delayed\", \"delivered\" or \"relayed\"")
)

const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700" // RFC 5322 §3.3

// Build renders the DSN message, headers included, with CRLF endings.
func Build(r Report) ([]byte, error) {
	sender := clean(r.Sender)
	if strings.TrimSpace(sender) == "" || sender == "<>" {
		return nil, ErrNullSender
	}
	if len(r.Recipients) == 0 {
		return nil, ErrNoRecipients
	}
	failed, delayed := false, false
	for i, rc := range r.Recipients {
		switch rc.Action {
		case "failed":
			failed = true
		case "delayed":
			delayed = true
		case "delivered", "relayed":
		default:
			return nil, fmt.Errorf("recipient %d (%q): %w", i, clean(rc.Addr), ErrBadAction)
		}
	}
	host := strings.Join(strings.Fields(ascii(r.ReportingMTA)), "")
	if host == "" {
		host = "localhost"
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	msgID := strings.TrimSpace(ascii(r.MessageID))
	if msgID == "" {
		msgID = "<" + randomHex() + "@" + host + ">"
	}

	text := humanPart(r, host, failed, delayed)
	status := statusPart(r, host)
	returned, whole := returnedOriginal(r.Original, r.OriginalSize)
	if whole && (!failed || r.Ret == RetHdrs) {
		returned, whole = originalHeaders(returned), false
	}
	boundary := pickBoundary(msgID, now, text, status, returned)

	subject := "Undelivered Mail Returned to Sender"
	switch {
	case failed:
	case delayed:
		subject = "Delayed Mail (still being retried)"
	default:
		subject = "Successful Mail Delivery Report"
	}
	var b bytes.Buffer
	writeField(&b, "From", "Mail Delivery System <MAILER-DAEMON@"+host+">")
	writeField(&b, "To", "<"+strings.Trim(sender, "<>")+">")
	writeField(&b, "Subject", subject)
	writeField(&b, "Date", now.Format(dateLayout))
	writeField(&b, "Message-ID", msgID)
	// RFC 3834 §5: marks the DSN as automatic so that responders stay quiet.
	writeField(&b, "Auto-Submitted", "auto-replied")
	writeField(&b, "MIME-Version", "1.0")
	writeField(&b, "Content-Type", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`)
	b.WriteString("\r\nThis is a MIME-encapsulated message.\r\n")

	part := func(header string, body []byte) {
		b.WriteString("\r\n--" + boundary + "\r\n" + header + "\r\n")
		b.Write(body)
		if !bytes.HasSuffix(body, []byte("\r\n")) {
			b.WriteString("\r\n")
		}
	}
	part("Content-Description: Notification\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n", text)
	part("Content-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n", status)
	if len(returned) > 0 {
		cte := "7bit"
		if !isASCII(returned) {
			cte = "8bit"
		}
		desc := "Undelivered Message"
		if !failed {
			desc = "Message"
		}
		if whole {
			part("Content-Description: "+desc+"\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: "+cte+"\r\n", returned)
		} else {
			part("Content-Description: "+desc+" Headers\r\nContent-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: "+cte+"\r\n", returned)
		}
	}
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return b.Bytes(), nil
}

// pickBoundary derives the boundary from the report, so that the output
// is reproducible, and makes sure no part contains it (RFC 2046 §5.1.1).
func pickBoundary(msgID string, now time.Time, parts ...[]byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%d", msgID, now.UnixNano())
	sum := hex.EncodeToString(h.Sum(nil))
	for n := 0; ; n++ {
		bnd := "=_sluice_" + sum[:24]
		if n > 0 {
			bnd += fmt.Sprintf("_%d", n)
		}
		clash := false
		for _, p := range parts {
			if bytes.Contains(p, []byte(bnd)) {
				clash = true
				break
			}
		}
		if !clash {
			return bnd
		}
	}
}

func randomHex() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
