package inbound

import (
	"bytes"
	"strconv"
)

// Write sends go-smtp's replies through rewriteLocked, then closes the
// connection after a fatal reply (RFC 5321 §3.8: 421 closes the channel).
func (c *conn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	out, closeAfter := c.rewriteLocked(p)
	under := c.under
	c.mu.Unlock()
	if _, err := under.Write(out); err != nil {
		return 0, err
	}
	if closeAfter {
		c.Close()
	}
	return len(p), nil
}

// rewriteLocked watches the replies go-smtp writes: it names us in the
// HELO/EHLO reply (RFC 5321 §4.1.1.1), offers STARTTLS, replaces go-smtp's
// own wording (replyText), remembers the last reply code (354 or not
// decides what follows DATA) and says whether the connection must close
// after a fatal reply (421, 521).
func (c *conn) rewriteLocked(p []byte) (out []byte, closeAfter bool) {
	c.wbuf = append(c.wbuf, p...)
	for {
		i := bytes.IndexByte(c.wbuf, '\n')
		if i < 0 {
			break
		}
		line := c.wbuf[:i+1]
		start := len(out)
		switch {
		case bytes.HasPrefix(line, []byte("250-Hello ")):
			out = append(out, "250-"+c.g.o.Hostname+" "...)
			out = append(out, line[4:]...)
			if c.g.o.TLSConfig != nil && !c.isTLS {
				out = append(out, "250-STARTTLS\r\n"...)
			}
			if c.isTLS {
				// RFC 8689 §4.1: REQUIRETLS is offered only in a
				// TLS-protected session.
				out = append(out, "250-REQUIRETLS\r\n"...)
			}
		case bytes.HasPrefix(line, []byte("250 2.0.0 Hello ")):
			out = append(out, "250 "+c.g.o.Hostname+" "...)
			out = append(out, line[10:]...)
		default:
			if r, ok := replyText(bytes.TrimRight(line, "\r\n"), c.isTLS); ok {
				out = append(out, r...)
				out = append(out, "\r\n"...)
			} else {
				out = append(out, line...)
			}
		}
		// The code that counts is the one the client sees.
		if last := out[start:]; len(last) >= 4 && (last[3] == ' ' || last[3] == '\r' || last[3] == '\n') {
			code, _ := strconv.Atoi(string(last[:3]))
			c.lastReply = code
			if code == 421 || code == 521 || c.closeAfterReply {
				closeAfter = true
			}
		}
		c.wbuf = c.wbuf[i+1:]
	}
	if len(c.wbuf) > 0 {
		out = append(out, c.wbuf...)
		c.wbuf = c.wbuf[:0]
	}
	return out, closeAfter
}

// replyExact maps reply lines that go-smtp writes itself to the ones an
// operator expects from an MTA: the enhanced codes of RFC 3463 §3 and the
// reply codes of RFC 5321 §4.2/§4.3.2 (503 for a bad sequence where
// go-smtp says 502 "not implemented", 555 for an unknown MAIL/RCPT
// parameter), in a plain register without the library's wording. Our own
// *smtp.SMTPError replies never appear here: they are written as they are.
var replyExact = map[string]string{
	"250 2.0.0 I have successfully done nothing":                "250 2.0.0 OK",
	"250 2.0.0 Session reset":                                   "250 2.0.0 OK",
	"250 2.0.0 Continue":                                        "250 2.0.0 OK: chunk received",
	"252 2.5.0 Cannot VRFY user, but will accept message":       "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery",
	"354 Go ahead. End your data with <CR><LF>.<CR><LF>":        "354 End data with <CR><LF>.<CR><LF>",
	"502 5.5.1 Please introduce yourself first.":                "503 5.5.1 Send HELO or EHLO first",
	"502 5.5.1 Missing MAIL FROM command.":                      "503 5.5.1 Need MAIL command",
	"502 5.5.1 Missing RCPT TO command.":                        "503 5.5.1 Need RCPT command",
	"502 5.5.1 MAIL not allowed during message transfer":        "503 5.5.1 MAIL not allowed during BDAT",
	"502 5.5.1 RCPT not allowed during message transfer":        "503 5.5.1 RCPT not allowed during BDAT",
	"502 5.5.1 DATA not allowed during message transfer":        "503 5.5.1 DATA not allowed during BDAT",
	"501 5.5.2 Was expecting MAIL arg syntax of FROM:<address>": "501 5.5.4 Syntax: MAIL FROM:<address>",
	"501 5.5.2 Was expecting RCPT arg syntax of TO:<address>":   "501 5.5.4 Syntax: RCPT TO:<address>",
	"501 5.5.2 Domain/address argument required for HELO":       "501 5.5.4 Syntax: EHLO hostname",
	"501 5.5.4 DATA command should not have any arguments":      "501 5.5.4 Syntax: DATA",
	"501 5.5.4 Unable to parse SIZE as an integer":              "501 5.5.4 Bad SIZE parameter",
	"500 5.5.4 Unknown MAIL FROM argument":                      "555 5.5.4 Unsupported parameter",
	"500 5.5.4 Unknown RCPT TO argument":                        "555 5.5.4 Unsupported parameter",
	"500 5.5.4 Malformed AUTH parameter value":                  "501 5.5.4 Bad AUTH parameter",
	"500 5.5.4 Malformed AUTH parameter mailbox":                "501 5.5.4 Bad AUTH parameter",
	"552 5.3.4 Max message size exceeded":                       "552 5.3.4 Message size exceeds fixed limit",
	"500 5.5.2 Error: bad syntax":                               "500 5.5.2 Command unrecognized",
	"501 5.5.2 Bad command":                                     "500 5.5.2 Command unrecognized",
	"500 5.5.1 Too many errors. Quiting now":                    "421 4.7.0 Too many errors, closing connection",
	"500 5.4.0 Too long line, closing connection":               "500 5.5.2 Line too long, closing connection",
	"421 4.4.2 Idle timeout, bye bye":                           "421 4.4.2 Idle timeout, closing connection",
	"421 4.4.0 Connection error, sorry":                         "421 4.4.0 Connection error, closing connection",
	"421 4.0.0 Internal server error":                           "421 4.3.0 Temporary local problem, closing connection",
	"502 5.5.4 Missing parameter":                               "501 5.5.4 Syntax: AUTH mechanism",
	"454 4.7.0 Invalid base64 data":                             "501 5.5.2 Cannot decode base64 response", // RFC 4954 §4
	"501 5.0.0 Negotiation cancelled":                           "501 5.7.0 Authentication cancelled",      // RFC 4954 §6
	"235 2.0.0 Authentication succeeded":                        "235 2.7.0 Authentication successful",     // RFC 4954 §6
}

// replyText returns our wording for a reply line go-smtp wrote, or false
// to send the line as it is. The lines carrying client text (the MAIL and
// RCPT acknowledgements echo the address, the "unrecognized" error echoes
// the command) are matched by prefix and never echo it back.
func replyText(line []byte, isTLS bool) (string, bool) {
	if len(line) < 4 || line[3] != ' ' {
		return "", false // a continuation line: only EHLO has those
	}
	if r, ok := replyExact[string(line)]; ok {
		return r, true
	}
	s := line
	switch {
	case bytes.HasPrefix(s, []byte("250 2.0.0 Roger, accepting mail from ")):
		return "250 2.1.0 Sender OK", true // RFC 3463 §3.3 X.1.0
	case bytes.HasPrefix(s, []byte("250 2.0.0 I'll make sure ")):
		return "250 2.1.5 Recipient OK", true // RFC 3463 §3.3 X.1.5
	case bytes.HasPrefix(s, []byte("500 5.5.2 Syntax errors, ")):
		return "500 5.5.2 Command unrecognized", true
	case bytes.HasPrefix(s, []byte("452 4.5.3 Maximum limit of ")):
		return "452 4.5.3 Too many recipients", true
	case bytes.HasPrefix(s, []byte("504 5.5.4 ")) && bytes.HasSuffix(s, []byte(" is not implemented")):
		// An ESMTP parameter we do not offer (RFC 5321 §4.1.1.11).
		return "555 5.5.4 Unsupported parameter", true
	case bytes.HasPrefix(s, []byte("454 4.7.0 ")):
		// A SASL error that is not ours (go-sasl's "sasl: invalid
		// response"); ours are bare *smtp.SMTPError with other codes.
		return "501 5.5.2 Malformed authentication response", true
	case bytes.HasPrefix(s, []byte("554 5.0.0 Error: transaction failed: ")):
		// Data returned an error that is not an *smtp.SMTPError: never
		// by design, but a permanent code would make the client drop
		// mail we failed to take, and the text is internal.
		return "451 4.3.0 Temporary local problem, try again", true
	case isTLS && string(s) == "502 5.5.1 TLS not supported":
		// STARTTLS reaches go-smtp only when we did not run it
		// (conn.Read): over TLS already, that is a bad sequence,
		// not an unknown command (RFC 3207 §4).
		return "503 5.5.1 TLS already active", true
	}
	return "", false
}
