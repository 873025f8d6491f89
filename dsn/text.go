package dsn

import (
	"bytes"
	"fmt"
	"mime/quotedprintable"
	"strings"
)

// humanPart is the first part (RFC 6522 §3): a plain explanation for the
// person who sent the mail. It is quoted-printable, so it stays 7-bit and
// its lines short whatever the replies contain.
func humanPart(r Report, host string, failed, delayed bool) []byte {
	var t strings.Builder
	fmt.Fprintf(&t, "This is the mail system at host %s.\n\n", host)
	switch {
	case failed:
		t.WriteString("I'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients. The details are below.\n")
	case delayed:
		t.WriteString("Your message could not be delivered yet to one or more recipients.\nThe mail system will keep trying; you do not need to resend it.\n")
	default:
		// RFC 3461 §4.1: SUCCESS was asked for these recipients.
		t.WriteString("Your message was successfully delivered to the destination(s)\nlisted below, as you asked (NOTIFY=SUCCESS).\n")
	}
	if id := clean(r.QueueID); id != "" {
		fmt.Fprintf(&t, "Queue ID: %s\n", id)
	}
	t.WriteString("\n")
	for _, rc := range r.Recipients {
		state := "could not be delivered"
		switch rc.Action {
		case "delayed":
			state = "delayed"
		case "delivered":
			state = "delivered"
		case "relayed":
			// RFC 3464 §2.3.3: the next hop does not report delivery
			// status, so no further notice will come from it.
			state = "relayed to a mail system that does not report delivery status;\n    you will get no further notice of this recipient"
		}
		fmt.Fprintf(&t, "<%s>: %s", clean(rc.Addr), state)
		if h := clean(rc.RemoteMTA); h != "" {
			fmt.Fprintf(&t, "; host %s said:\n    %s\n", h, clean(rc.Diagnostic))
		} else if d := clean(rc.Diagnostic); d != "" {
			fmt.Fprintf(&t, ":\n    %s\n", d)
		} else {
			t.WriteString("\n")
		}
	}
	if why := clean(r.OriginalUnavailable); why != "" {
		fmt.Fprintf(&t, "\nThe original message could not be returned with this report: %s.\n", why)
	}
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b) // text mode: "\n" becomes CRLF
	_, _ = w.Write([]byte(strings.ToValidUTF8(t.String(), "\uFFFD")))
	_ = w.Close()
	return b.Bytes()
}
