package dsn

import (
	"bytes"
	"regexp"
	"strings"
)

// statusRE is an RFC 3463 status code: class.subject.detail.
var statusRE = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// statusPart is the message/delivery-status body (RFC 3464 §2.1): one
// block of per-message fields, then one block per recipient, separated
// by empty lines. Its fields are US-ASCII header fields.
func statusPart(r Report, host string) []byte {
	var b bytes.Buffer
	writeField(&b, "Reporting-MTA", "dns; "+host)
	if id := ascii(r.EnvID); id != "" {
		writeField(&b, "Original-Envelope-Id", XText(id))
	}
	if id := ascii(r.QueueID); id != "" {
		writeField(&b, "X-Queue-ID", id)
	}
	writeField(&b, "X-Original-Sender", addrField(r.Sender))
	if !r.Arrival.IsZero() {
		writeField(&b, "Arrival-Date", r.Arrival.Format(dateLayout))
	}
	for _, rc := range r.Recipients {
		b.WriteString("\r\n")
		if o := originalRecipient(rc.ORcpt); o != "" {
			writeField(&b, "Original-Recipient", o)
		}
		writeField(&b, "Final-Recipient", addrField(rc.Addr))
		writeField(&b, "Action", rc.Action)
		writeField(&b, "Status", status(rc))
		if h := strings.Join(strings.Fields(ascii(rc.RemoteMTA)), ""); h != "" {
			writeField(&b, "Remote-MTA", "dns; "+h)
		}
		if d := strings.TrimSpace(ascii(rc.Diagnostic)); d != "" {
			writeField(&b, "Diagnostic-Code", "smtp; "+d)
		}
		if !rc.LastAttempt.IsZero() {
			writeField(&b, "Last-Attempt-Date", rc.LastAttempt.Format(dateLayout))
		}
	}
	return b.Bytes()
}

// status falls back to the generic code of the action's class when the
// given one is not a valid RFC 3463 code: a malformed status must not
// stop the bounce from going out.
func status(rc Recipient) string {
	s := strings.TrimSpace(rc.Status)
	if statusRE.MatchString(s) {
		return s
	}
	switch rc.Action {
	case "delayed":
		return "4.0.0"
	case "delivered", "relayed":
		return "2.0.0"
	}
	return "5.0.0"
}
