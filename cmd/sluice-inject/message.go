package main

import (
	"fmt"
	"strings"
	"time"
)

// messageID is the unique id of message n of a run; crash tests match the
// acked file against the receiver on it.
func messageID(runID string, n int) string {
	return fmt.Sprintf("<inj-%s-%d@sluice.test>", runID, n)
}

// recipients returns the recipients of message n: with a %d in the
// pattern each gets its own number, since greylisting keys on the
// (IP, sender, recipient) triplet. With wrap > 0 the number wraps after
// wrap, so that -to 'u@d%d.test' -wrap 10000 spreads the mail over
// 10,000 domains (the scale bench's many-destinations run).
func recipients(pattern string, n, per, wrap int) []string {
	out := make([]string, per)
	for j := range out {
		if strings.Contains(pattern, "%d") {
			k := n*per + j
			if wrap > 0 {
				k %= wrap
			}
			out[j] = fmt.Sprintf(pattern, k)
		} else {
			out[j] = pattern
		}
	}
	return out
}

// bodyLine is 70 characters: with CRLF, lines stay under the 78 that
// RFC 5322 §2.1.1 recommends.
const bodyLine = "The quick brown fox jumps over the lazy dog, again and again. 0123456"

// buildMessage renders message n with CRLF line ends and about size bytes.
func buildMessage(runID string, n int, from string, to []string, size int, date time.Time) []byte {
	var b strings.Builder
	b.Grow(size + 512)
	fmt.Fprintf(&b, "From: <%s>\r\n", from)
	fmt.Fprintf(&b, "To: <%s>\r\n", strings.Join(to, ">,\r\n <"))
	fmt.Fprintf(&b, "Subject: sluice-inject %s %d\r\n", runID, n)
	fmt.Fprintf(&b, "Date: %s\r\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: %s\r\n", messageID(runID, n))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	for b.Len() < size {
		b.WriteString(bodyLine[:min(len(bodyLine), max(1, size-b.Len()-2))])
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}
