package lintcheck

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"sluice/config"
	"sluice/lint"
)

// sourceMsg is the message smtp-source sends (bench/throughput.sh): a
// short header and 2 KB of text.
func sourceMsg() []byte {
	var b strings.Builder
	b.WriteString("From: <bench@sender.test>\r\nTo: <user@dest.test>\r\nDate: Mon, 30 Nov 2026 02:00:00 +0000\r\nMessage-Id: <1@sender.test>\r\nSubject: test\r\n\r\n")
	for b.Len() < 2048 {
		b.WriteString("La de da de da 1.\r\n")
	}
	return []byte(b.String())
}

// newsMsg is a newsletter of about 50 KB as cmd/apiload -newsletter posts
// it: multipart/alternative, a link and an image per paragraph,
// one-click unsubscribe.
func newsMsg() []byte {
	var text, html strings.Builder
	for i := 0; text.Len()+html.Len() < 50<<10; i++ {
		p := fmt.Sprintf("Article %d: the spring collection arrived in our shops this week, with new colours and the sizes you asked for.", i)
		fmt.Fprintf(&text, "%s\r\nRead more: https://www.sender.test/articles/%d\r\n\r\n", p, i)
		fmt.Fprintf(&html, "<p>%s <a href=\"https://www.sender.test/articles/%d\">Read the article</a></p>\r\n"+
			"<img src=\"https://img.sender.test/%d.jpg\" alt=\"Photo %d\" width=\"120\" height=\"60\">\r\n", p, i, i, i)
	}
	return []byte("From: Sender News <news@sender.test>\r\nTo: <user@dest.test>\r\nDate: Mon, 30 Nov 2026 02:00:00 +0000\r\n" +
		"Message-Id: <1@sender.test>\r\nSubject: Spring news\r\nList-Unsubscribe: <https://www.sender.test/u?u=1>\r\n" +
		"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text.String() +
		"\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>" + html.String() + "</body></html>\r\n--b1--\r\n")
}

// BenchmarkCheck is the cost per message of the acceptance check in warn
// mode (sender domain, bulk counter, lint, counters, tally, log gate)
// against lint.Check alone on the same message: the difference is the
// wiring's own cost.
func BenchmarkCheck(b *testing.B) {
	for _, m := range []struct {
		name string
		msg  []byte
	}{{"smtp-source-2KB", sourceMsg()}, {"newsletter-50KB", newsMsg()}} {
		hdr := m.msg[:bytes.Index(m.msg, []byte("\r\n\r\n"))+4]
		in := Input{MailFrom: "bench@sender.test", Header: hdr, Open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(m.msg)), nil
		}}
		b.Run(m.name+"/lint.Check", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(m.msg)))
			for b.Loop() {
				if _, err := lint.Check(bytes.NewReader(m.msg), lint.Options{MaxBytes: 1 << 20}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(m.name+"/warn", func(b *testing.B) {
			o := OptionsFrom(config.Default())
			o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			c, err := New(o)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(m.msg)))
			for b.Loop() {
				if err := c.Check(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestBenchMessages(t *testing.T) {
	t.Parallel()
	for name, m := range map[string][]byte{"source": sourceMsg(), "news": newsMsg()} {
		f, err := lint.Check(bytes.NewReader(m), lint.Options{MaxBytes: 1 << 20})
		if err != nil || len(f) != 0 {
			t.Errorf("%s: findings %v, err %v: the benchmark would measure logging", name, f, err)
		}
	}
	_ = time.Second
}
