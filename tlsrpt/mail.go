package tlsrpt

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
	"time"
)

// MediaType is the report's media type when gzip-compressed, for mail
// attachments (RFC 8460 §5.3) and HTTPS POST bodies (§5.4) alike.
const MediaType = "application/tlsrpt+gzip"

// mailReport builds the message that carries a report to a mailto: rua
// (RFC 8460 §5.3): multipart/report with report-type "tlsrpt", the
// TLS-Report-Domain and TLS-Report-Submitter header fields, the Subject
// the RFC gives, a short text part and the gzip-compressed report as an
// application/tlsrpt+gzip attachment named as §5.1 says.
func mailReport(id Identity, to, domain string, start, end, now time.Time, reportID string, gz []byte) ([]byte, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	boundary := "tlsrpt-" + randomHex(12)
	if err := mw.SetBoundary(boundary); err != nil {
		return nil, err
	}
	text, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {`text/plain; charset="us-ascii"`},
		"Content-Transfer-Encoding": {"7bit"},
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(text, "This is an aggregate TLS report (RFC 8460) from %s\r\nfor %s, %s to %s.\r\n",
		id.Submitter, domain, start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	att, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {MediaType},
		"Content-Transfer-Encoding": {"base64"},
		"Content-Disposition":       {mime.FormatMediaType("attachment", map[string]string{"filename": filename(id, domain, start, end)})},
	})
	if err != nil {
		return nil, err
	}
	enc := base64.StdEncoding.EncodeToString(gz)
	for len(enc) > 76 {
		fmt.Fprintf(att, "%s\r\n", enc[:76])
		enc = enc[76:]
	}
	fmt.Fprintf(att, "%s\r\n", enc)
	if err := mw.Close(); err != nil {
		return nil, err
	}

	var m bytes.Buffer
	h := func(name, value string) { fmt.Fprintf(&m, "%s: %s\r\n", name, value) }
	h("From", "<"+id.From+">")
	h("To", "<"+to+">")
	h("Date", now.UTC().Format(time.RFC1123Z))
	h("Message-ID", "<"+randomHex(16)+"@"+id.Submitter+">")
	// §5.3: "Report Domain: <domain> Submitter: <submitter> Report-ID: <id>".
	h("Subject", "Report Domain: "+domain+" Submitter: "+id.Submitter+" Report-ID: <"+reportID+">")
	h("TLS-Report-Domain", domain)
	h("TLS-Report-Submitter", id.Submitter)
	h("MIME-Version", "1.0")
	h("Content-Type", `multipart/report; report-type="tlsrpt"; boundary="`+boundary+`"`)
	m.WriteString("\r\nThis is a multipart message in MIME format.\r\n\r\n")
	m.Write(body.Bytes())
	return m.Bytes(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// headerSafe refuses what would break a header line: the identity is
// operator-set and the domain comes from our own tally, but neither may
// ever inject a field.
func headerSafe(s string) bool { return !strings.ContainsAny(s, "\r\n") }
