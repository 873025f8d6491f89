package lint

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime/quotedprintable"
	"strings"
	"testing"
)

// newsletter is a realistic multipart/alternative newsletter of about
// size bytes: quoted-printable text and HTML, a few dozen links and
// images, one-click unsubscribe.
func newsletter(size int) []byte {
	var text, html bytes.Buffer
	html.WriteString("<!DOCTYPE html><html><head><title>News</title><style>p{margin:0 0 1em}</style></head><body>\n")
	for i := 0; text.Len()+html.Len() < size*9/10; i++ {
		para := fmt.Sprintf("Story %d: the garden club met on Thursday and agreed on the spring walk, a second bench at the pond and a small rise of the yearly fee to cover the insurance of the shed.", i)
		fmt.Fprintf(&text, "%s\nRead more: https://news.example.com/story/%d\n\n", para, i)
		fmt.Fprintf(&html, "<table role=\"presentation\" width=\"100%%\"><tr><td><img src=\"https://cdn.example.com/img/%d.jpg\" width=\"120\" height=\"80\" alt=\"Story %d\"></td>\n<td><p>%s</p><p><a href=\"https://news.example.com/story/%d?utm_source=nl&amp;utm_medium=email\">Read more on news.example.com</a></p></td></tr></table>\n", i, i, para, i)
	}
	html.WriteString("<p><a href=\"https://news.example.com/unsubscribe?u=1\">Unsubscribe</a></p><img src=\"https://news.example.com/o.gif\" width=\"1\" height=\"1\" alt=\"\"></body></html>\n")
	var m bytes.Buffer
	m.WriteString("From: Example News <news@example.com>\r\nTo: jane@example.org\r\nSubject: This week at the club\r\nDate: Mon, 30 Nov 2026 02:00:00 +0000\r\nMessage-ID: <nl-1@example.com>\r\nList-Unsubscribe: <https://news.example.com/unsubscribe?u=1>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n")
	for _, p := range []struct{ ctype, body string }{{"text/plain", text.String()}, {"text/html", html.String()}} {
		fmt.Fprintf(&m, "--alt\r\nContent-Type: %s; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", p.ctype)
		w := quotedprintable.NewWriter(&m)
		w.Write([]byte(p.body))
		w.Close()
		m.WriteString("\r\n")
	}
	m.WriteString("--alt--\r\n")
	return m.Bytes()
}

// withAttachment is a short text message with an attachment of n random
// bytes, base64-encoded in 76-character lines.
func withAttachment(n int) []byte {
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	var m bytes.Buffer
	m.WriteString("From: Example Billing <billing@example.com>\r\nTo: jane@example.org\r\nSubject: Your statement\r\nDate: Mon, 30 Nov 2026 02:00:00 +0000\r\nMessage-ID: <st-1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n--mix\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello Jane, your statement for November is attached.\r\n\r\n--mix\r\nContent-Type: application/pdf; name=\"statement.pdf\"\r\nContent-Disposition: attachment; filename=\"statement.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		m.WriteString(enc[:76])
		m.WriteString("\r\n")
		enc = enc[76:]
	}
	m.WriteString(enc + "\r\n--mix--\r\n")
	return m.Bytes()
}

func benchCheck(b *testing.B, msg []byte, o Options) {
	b.Helper()
	if got, err := Check(bytes.NewReader(msg), o); err != nil || len(got) != 0 {
		b.Fatalf("the benchmark message is not clean: %v %v", got, err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Check(bytes.NewReader(msg), o); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckNewsletter50KB(b *testing.B) {
	msg := newsletter(50 << 10)
	if l := len(msg); l < 45<<10 || l > 60<<10 {
		b.Fatalf("newsletter is %d bytes", l)
	}
	benchCheck(b, msg, Options{Bulk: true})
}

// BenchmarkCheck10MBAttachment: with the default cap Check reads the
// first MiB and stops; "whole" lifts the cap to show the cost of stepping
// over all 10 MB without decoding it.
func BenchmarkCheck10MBAttachment(b *testing.B) {
	msg := withAttachment(10 << 20 * 3 / 4) // 10 MB once base64-encoded
	b.Run("default-cap", func(b *testing.B) { benchCheck(b, msg, Options{}) })
	b.Run("whole", func(b *testing.B) { benchCheck(b, msg, Options{MaxBytes: 32 << 20}) })
}

// The newsletter generator must itself be clean: a benchmark of a
// message with findings would measure the wrong path.
func TestBenchMessagesAreClean(t *testing.T) {
	t.Parallel()
	for name, m := range map[string][]byte{"newsletter": newsletter(50 << 10), "attachment": withAttachment(64 << 10)} {
		got, err := Check(bytes.NewReader(m), Options{Bulk: name == "newsletter", MaxBytes: 32 << 20})
		if err != nil || len(got) != 0 {
			t.Errorf("%s: %v %v", name, got, err)
		}
		if !strings.Contains(string(m[:200]), "From:") {
			t.Errorf("%s: no header", name)
		}
	}
}
