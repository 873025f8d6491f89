package dsn

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
)

const original = "Received: from app (app [10.0.0.5])\r\n\tby relay.example.com; Wed, 25 Nov 2026 10:00:00 +0000\r\n" +
	"From: App <app@example.com>\r\nTo: a@dest.test\r\nSubject: Invoice\r\nMessage-ID: <m1@example.com>\r\n\r\n" +
	"Body line that must not be returned\r\n"

func sampleReport() Report {
	return Report{
		ReportingMTA: "relay.example.com",
		Sender:       "app@example.com",
		QueueID:      "Q123",
		Arrival:      t0.Add(-2 * time.Hour),
		Now:          t0,
		MessageID:    "<dsn1@relay.example.com>",
		// A large original: the caller read its header section only
		// (ReadOriginal), so only headers are returned.
		Original:     []byte(original),
		OriginalSize: 24 << 20,
		Recipients: []Recipient{
			{Addr: "a@dest.test", Action: "failed", Status: "5.1.1", RemoteMTA: "mx1.dest.test",
				Diagnostic: "550 5.1.1 <a@dest.test>: Recipient address rejected: User unknown", LastAttempt: t0.Add(-time.Minute)},
			{Addr: "b@dest.test", Action: "failed", Status: "4.4.7", Diagnostic: "421 4.4.2 connection timed out", LastAttempt: t0},
		},
	}
}

type parsed struct {
	msg   *mail.Message
	parts []part
}

type part struct {
	header textproto.MIMEHeader
	body   []byte
}

// parse reads a DSN the way a mail client would.
func parse(t *testing.T, b []byte) parsed {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("net/mail: %v", err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type = %q (%v)", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var ps []part
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("multipart: %v", err)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, part{p.Header, body})
	}
	return parsed{m, ps}
}

// fields parses the blocks of a message/delivery-status body.
func fields(t *testing.T, body []byte) []textproto.MIMEHeader {
	t.Helper()
	r := textproto.NewReader(bufioReader(body))
	var blocks []textproto.MIMEHeader
	for {
		h, err := r.ReadMIMEHeader()
		if len(h) > 0 {
			blocks = append(blocks, h)
		}
		if err == io.EOF {
			return blocks
		}
		if err != nil {
			t.Fatalf("delivery-status: %v", err)
		}
	}
}

func TestBuildStructure(t *testing.T) {
	t.Parallel()
	out, err := Build(sampleReport())
	if err != nil {
		t.Fatal(err)
	}
	checkWire(t, out)
	p := parse(t, out)
	h := p.msg.Header
	for k, want := range map[string]string{
		"From":           "Mail Delivery System <MAILER-DAEMON@relay.example.com>",
		"To":             "<app@example.com>",
		"Subject":        "Undelivered Mail Returned to Sender",
		"Auto-Submitted": "auto-replied",
		"Message-Id":     "<dsn1@relay.example.com>",
		"Mime-Version":   "1.0",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if d, err := h.Date(); err != nil || !d.Equal(t0) {
		t.Errorf("Date = %v, %v", d, err)
	}
	if len(p.parts) != 3 {
		t.Fatalf("%d parts, want 3", len(p.parts))
	}
	wantTypes := []string{"text/plain", "message/delivery-status", "text/rfc822-headers"}
	for i, w := range wantTypes {
		if mt, _, _ := mime.ParseMediaType(p.parts[i].header.Get("Content-Type")); mt != w {
			t.Errorf("part %d type %q, want %q", i, mt, w)
		}
	}
	text, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(p.parts[0].body)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<a@dest.test>", "host mx1.dest.test said:", "User unknown", "421 4.4.2 connection timed out", "Q123"} {
		if !bytes.Contains(text, []byte(want)) {
			t.Errorf("text part lacks %q:\n%s", want, text)
		}
	}
	blocks := fields(t, p.parts[1].body)
	if len(blocks) != 3 {
		t.Fatalf("%d field blocks, want 3: %v", len(blocks), blocks)
	}
	checkFields(t, blocks[0], map[string]string{
		"Reporting-Mta": "dns; relay.example.com",
		"X-Queue-Id":    "Q123",
		"Arrival-Date":  "Wed, 25 Nov 2026 10:00:00 +0000",
	})
	checkFields(t, blocks[1], map[string]string{
		"Final-Recipient":   "rfc822; a@dest.test",
		"Action":            "failed",
		"Status":            "5.1.1",
		"Remote-Mta":        "dns; mx1.dest.test",
		"Diagnostic-Code":   "smtp; 550 5.1.1 <a@dest.test>: Recipient address rejected: User unknown",
		"Last-Attempt-Date": "Wed, 25 Nov 2026 11:59:00 +0000",
	})
	checkFields(t, blocks[2], map[string]string{
		"Final-Recipient": "rfc822; b@dest.test",
		"Status":          "4.4.7",
		"Remote-Mta":      "",
	})
	hdrs := string(p.parts[2].body)
	if !strings.Contains(hdrs, "Subject: Invoice\r\n") || strings.Contains(hdrs, "Body line") {
		t.Errorf("returned headers wrong:\n%s", hdrs)
	}
}

func checkFields(t *testing.T, h textproto.MIMEHeader, want map[string]string) {
	t.Helper()
	for k, w := range want {
		// Unfold continuation lines the way RFC 5322 §2.2.3 says.
		got := strings.Join(strings.Fields(h.Get(k)), " ")
		if got != w {
			t.Errorf("%s = %q, want %q", k, got, w)
		}
	}
}

// checkWire asserts the SMTP-safety promises of the package doc.
func checkWire(t *testing.T, b []byte) {
	t.Helper()
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			t.Fatalf("bare LF at %d", i)
		}
		if c == '\r' && (i+1 >= len(b) || b[i+1] != '\n') {
			t.Fatalf("lone CR at %d", i)
		}
	}
	for i, l := range bytes.Split(b, []byte("\r\n")) {
		if len(l) > 998 {
			t.Fatalf("line %d is %d octets", i+1, len(l))
		}
	}
}

func TestBuildErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*Report)
		want   error
	}{
		{"null sender", func(r *Report) { r.Sender = "" }, ErrNullSender},
		{"null sender brackets", func(r *Report) { r.Sender = "<>" }, ErrNullSender},
		{"null sender CRLF only", func(r *Report) { r.Sender = "\r\n" }, ErrNullSender},
		{"no recipients", func(r *Report) { r.Recipients = nil }, ErrNoRecipients},
		{"bad action", func(r *Report) { r.Recipients[1].Action = "bounced" }, ErrBadAction},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := sampleReport()
			tt.modify(&r)
			if _, err := Build(r); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestBuildVariants(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 3000)
	tests := []struct {
		name   string
		modify func(*Report)
		check  func(t *testing.T, p parsed)
	}{
		{"header injection", func(r *Report) {
			r.Sender = "app@example.com\r\nBcc: victim@example.org"
			r.Recipients[0].Addr = "a@dest.test\r\nX-Evil: 1"
			r.Recipients[0].Diagnostic = "550 no\r\nX-Evil: 2\n\nbody"
			r.ReportingMTA = "relay\r\nX-Evil: 3"
			r.MessageID = "<x@y>\r\nX-Evil: 4"
		}, func(t *testing.T, p parsed) {
			if p.msg.Header.Get("Bcc") != "" || p.msg.Header.Get("X-Evil") != "" {
				t.Errorf("injected header: %v", p.msg.Header)
			}
			for _, b := range fields(t, p.parts[1].body) {
				if b.Get("X-Evil") != "" {
					t.Errorf("injected status field: %v", b)
				}
			}
		}},
		{"long diagnostic folded", func(r *Report) {
			r.Recipients[0].Diagnostic = "550 5.7.1 " + strings.Repeat("word ", 400) + long
		}, func(t *testing.T, p parsed) {
			d := strings.Join(strings.Fields(fields(t, p.parts[1].body)[1].Get("Diagnostic-Code")), "")
			if !strings.HasSuffix(d, long) {
				t.Errorf("diagnostic lost its tail")
			}
		}},
		{"delayed only", func(r *Report) {
			r.Recipients = []Recipient{{Addr: "c@dest.test", Action: "delayed", Status: "4.7.0", Diagnostic: "421 4.7.0 try again later"}}
		}, func(t *testing.T, p parsed) {
			if s := p.msg.Header.Get("Subject"); !strings.HasPrefix(s, "Delayed Mail") {
				t.Errorf("Subject = %q", s)
			}
		}},
		{"invalid status falls back", func(r *Report) {
			r.Recipients[0].Status = "bogus"
			r.Recipients[1].Action = "delayed"
			r.Recipients[1].Status = ""
		}, func(t *testing.T, p parsed) {
			b := fields(t, p.parts[1].body)
			if b[1].Get("Status") != "5.0.0" || b[2].Get("Status") != "4.0.0" {
				t.Errorf("statuses %q %q", b[1].Get("Status"), b[2].Get("Status"))
			}
		}},
		{"utf-8 recipient", func(r *Report) { r.Recipients[0].Addr = "jöran+x@dest.test" }, func(t *testing.T, p parsed) {
			got := fields(t, p.parts[1].body)[1].Get("Final-Recipient")
			if got != `utf-8; j\x{F6}ran\x{2B}x@dest.test` {
				t.Errorf("Final-Recipient = %q", got)
			}
		}},
		{"small original returned whole", func(r *Report) { r.OriginalSize = 0 }, func(t *testing.T, p parsed) {
			if mt := p.parts[2].header.Get("Content-Type"); mt != "message/rfc822" || string(p.parts[2].body) != original {
				t.Errorf("part 3 = %s:\n%q", mt, p.parts[2].body)
			}
		}},
		{"original at the limit returned whole", func(r *Report) {
			r.Original = []byte(original + strings.Repeat("x\r\n", (ReturnLimit-len(original))/3-10))
			r.Original = append(r.Original, strings.Repeat("y", ReturnLimit-len(r.Original)-2)+"\r\n"...)
			r.OriginalSize = int64(len(r.Original))
		}, func(t *testing.T, p parsed) {
			if mt := p.parts[2].header.Get("Content-Type"); mt != "message/rfc822" || len(p.parts[2].body) != ReturnLimit {
				t.Errorf("part 3 = %s, %d bytes", mt, len(p.parts[2].body))
			}
		}},
		{"original one byte over the limit: headers", func(r *Report) {
			r.Original = []byte(original + strings.Repeat("x\r\n", (ReturnLimit-len(original))/3-10))
			r.Original = append(r.Original, strings.Repeat("y", ReturnLimit-len(r.Original)-1)+"\r\n"...)
			r.OriginalSize = 0
		}, func(t *testing.T, p parsed) {
			if mt := p.parts[2].header.Get("Content-Type"); mt != "text/rfc822-headers" || strings.Contains(string(p.parts[2].body), "Body line") {
				t.Errorf("part 3 = %s:\n%q", mt, p.parts[2].body)
			}
		}},
		{"small original with a long line: headers", func(r *Report) {
			r.Original = []byte(original + strings.Repeat("z", 1200) + "\r\n")
			r.OriginalSize = 0
		}, func(t *testing.T, p parsed) {
			if mt := p.parts[2].header.Get("Content-Type"); mt != "text/rfc822-headers" {
				t.Errorf("part 3 = %s", mt)
			}
		}},
		{"no original", func(r *Report) { r.Original = nil }, func(t *testing.T, p parsed) {
			if len(p.parts) != 2 {
				t.Errorf("%d parts, want 2", len(p.parts))
			}
		}},
		// Issue 9 item 25: a body that is gone is said, not silently left out.
		{"original unavailable", func(r *Report) {
			r.Original = nil
			r.OriginalUnavailable = "its body is missing from the queue\r\nX-Injected: 1"
		}, func(t *testing.T, p parsed) {
			if len(p.parts) != 2 {
				t.Errorf("%d parts, want 2", len(p.parts))
			}
			text, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(p.parts[0].body)))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(text), "could not be returned with this report: its body is missing from the queue") {
				t.Errorf("human part does not say the original is missing:\n%s", text)
			}
			if strings.Contains(string(text), "\nX-Injected") {
				t.Errorf("reason not cleaned:\n%s", text)
			}
		}},
		{"original with bare LF and long line", func(r *Report) {
			r.Original = []byte("Subject: a\nX-Long: " + long + "\nX-CR: a\rb\n\nbody\n")
		}, func(t *testing.T, p parsed) {
			h := string(p.parts[2].body)
			if !strings.HasPrefix(h, "Subject: a\r\nX-Long: ") || strings.Contains(h, "body") || !strings.Contains(h, "X-CR: a b\r\n") {
				t.Errorf("headers:\n%q", h)
			}
		}},
		{"boundary in original", func(r *Report) {
			b, _ := Build(sampleReport())
			_, params, _ := mime.ParseMediaType(parse(t, b).msg.Header.Get("Content-Type"))
			r.Original = []byte("X-Trap: --" + params["boundary"] + "\r\n\r\n")
		}, func(t *testing.T, p parsed) {
			if len(p.parts) != 3 || !strings.HasPrefix(string(p.parts[2].body), "X-Trap: --=_sluice_") {
				t.Errorf("boundary clash not avoided: %d parts", len(p.parts))
			}
		}},
		{"generated message id", func(r *Report) { r.MessageID = "" }, func(t *testing.T, p parsed) {
			id := p.msg.Header.Get("Message-Id")
			if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@relay.example.com>") || len(id) < 30 {
				t.Errorf("Message-ID = %q", id)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := sampleReport()
			tt.modify(&r)
			out, err := Build(r)
			if err != nil {
				t.Fatal(err)
			}
			checkWire(t, out)
			tt.check(t, parse(t, out))
		})
	}
}

// TestGolden pins the exact output. Regenerate with
// UPDATE_GOLDEN=1 go test ./dsn -run TestGolden.
func TestGolden(t *testing.T) {
	t.Parallel()
	out, err := Build(sampleReport())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "bounce.golden")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Fatalf("output differs from %s:\n%s", path, out)
	}
}

func TestReadOriginal(t *testing.T) {
	t.Parallel()
	big := original + strings.Repeat("body line\r\n", 10000)
	tests := []struct {
		name string
		msg  string
		want string
	}{
		{"small: all of it", original, original},
		{"large: the header section only", big, original[:strings.Index(original, "\r\n\r\n")+4]},
		{"large, a line ending at a buffer edge", "X: " + strings.Repeat("x", 4096-3) + "\r\n\r\n" + big, "X: " + strings.Repeat("x", 4096-3) + "\r\n\r\n"},
		{"large without an empty line: up to 1 MiB", strings.Repeat("X-A: b\r\n", 200000), strings.Repeat("X-A: b\r\n", 200000)[:maxHeaderRead]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &countingReader{r: strings.NewReader(tt.msg)}
			got, err := ReadOriginal(r, int64(len(tt.msg)))
			if err != nil || string(got) != tt.want {
				t.Fatalf("ReadOriginal = %d bytes (%v), want %d", len(got), err, len(tt.want))
			}
			if len(tt.msg) > ReturnLimit && r.n > maxHeaderRead+4096 {
				t.Errorf("read %d bytes of a large original", r.n)
			}
		})
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
