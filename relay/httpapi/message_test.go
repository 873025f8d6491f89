package httpapi

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"
	"testing"
)

func ptr(s string) *string { return &s }

// parse reads a built message back as a mail reader would, and returns
// its header and the decoded text of each part (one for a single part).
func parse(t testing.TB, msg []byte) (mail.Header, map[string]string) {
	t.Helper()
	checkWire(t, msg)
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("not a message: %v\n%s", err, msg)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type: %v", err)
	}
	parts := map[string]string{}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(m.Body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
			parts[pt] = decode(t, p.Header.Get("Content-Transfer-Encoding"), p)
		}
		return m.Header, parts
	}
	parts[mt] = decode(t, m.Header.Get("Content-Transfer-Encoding"), m.Body)
	return m.Header, parts
}

func decode(t testing.TB, cte string, r io.Reader) string {
	t.Helper()
	var b []byte
	var err error
	switch cte {
	case "7bit":
		b, err = io.ReadAll(r)
	case "quoted-printable":
		b, err = io.ReadAll(quotedprintable.NewReader(r))
	case "base64":
		b, err = io.ReadAll(base64.NewDecoder(base64.StdEncoding, r))
	default:
		t.Fatalf("Content-Transfer-Encoding %q", cte)
	}
	if err != nil {
		t.Fatalf("%s: %v", cte, err)
	}
	return string(b)
}

// checkWire: CRLF only, no line over 998 octets (RFC 5322 §2.1.1).
func checkWire(t testing.TB, msg []byte) {
	t.Helper()
	for i, line := range bytes.Split(msg, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d: a bare CR or LF: %q", i+1, line)
		}
		if len(line) > 998 {
			t.Fatalf("line %d: %d octets", i+1, len(line))
		}
	}
}

func TestBuildMessage(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("word ", 400)
	tests := []struct {
		name     string
		req      Request
		header   map[string]string // decoded values (mail.Header / WordDecoder)
		parts    map[string]string // media type -> decoded text
		ctes     []string          // the Content-Transfer-Encodings, in order
		noFields []string
	}{
		{name: "text ascii",
			req:    Request{From: "app@example.com", To: []string{"a@example.net"}, Subject: "Hi", Text: ptr("hello\nworld")},
			header: map[string]string{"From": "<app@example.com>", "To": "<a@example.net>", "Subject": "Hi", "Mime-Version": "1.0"},
			parts:  map[string]string{"text/plain": "hello\r\nworld\r\n"}, ctes: []string{"7bit"},
			noFields: []string{"Bcc"}},
		{name: "text latin: quoted-printable",
			req:    Request{From: "app@example.com", To: []string{"a@example.net"}, Subject: "Café crème", Text: ptr("Voilà, un café.\r\n")},
			header: map[string]string{"Subject": "Café crème"},
			parts:  map[string]string{"text/plain": "Voilà, un café.\r\n"}, ctes: []string{"quoted-printable"}},
		{name: "text japanese: base64",
			req:   Request{From: "app@example.com", To: []string{"a@example.net"}, Text: ptr("こんにちは世界")},
			parts: map[string]string{"text/plain": "こんにちは世界"}, ctes: []string{"base64"}},
		{name: "html only",
			req:   Request{From: "app@example.com", To: []string{"a@example.net"}, HTML: ptr("<p>hi</p>")},
			parts: map[string]string{"text/html": "<p>hi</p>\r\n"}, ctes: []string{"7bit"}},
		{name: "text and html: alternative",
			req:   Request{From: "app@example.com", To: []string{"a@example.net"}, Text: ptr("hi"), HTML: ptr("<p>h\u00e9</p>")},
			parts: map[string]string{"text/plain": "hi\r\n", "text/html": "<p>h\u00e9</p>"}},
		{name: "a long line: quoted-printable",
			req:   Request{From: "app@example.com", To: []string{"a@example.net"}, Text: ptr(strings.Repeat("x", 2000))},
			parts: map[string]string{"text/plain": strings.Repeat("x", 2000)}, ctes: []string{"quoted-printable"}},
		{name: "headers: From, To, Reply-To given, names in UTF-8",
			req: Request{From: "bounce@example.com", To: []string{"a@example.net", "b@example.net"}, Text: ptr("x"),
				Headers: map[string]string{"from": "Zoë <app@example.com>", "To": "Ana <a@example.net>", "Reply-To": "help@example.com", "X-Campaign": "spring ☀"}},
			header: map[string]string{"From": "\"Zoë\" <app@example.com>", "To": "\"Ana\" <a@example.net>", "Reply-To": "<help@example.com>", "X-Campaign": "spring ☀"}},
		{name: "To from the envelope",
			req:    Request{From: "app@example.com", To: []string{"a@example.net", "b@example.net"}, Text: ptr("x")},
			header: map[string]string{"To": "<a@example.net>, <b@example.net>"}},
		{name: "Cc given: no To added",
			req:      Request{From: "app@example.com", To: []string{"a@example.net"}, Text: ptr("x"), Headers: map[string]string{"Cc": "a@example.net"}},
			noFields: []string{"To"}},
		{name: "a long subject is folded",
			req:    Request{From: "app@example.com", To: []string{"a@example.net"}, Subject: long, Text: ptr("x")},
			header: map[string]string{"Subject": strings.TrimSpace(long)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := tc.req.Message()
			if err != nil {
				t.Fatal(err)
			}
			h, parts := parse(t, msg)
			var dec mime.WordDecoder
			for k, want := range tc.header {
				got, err := dec.DecodeHeader(h.Get(k))
				if err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				if k == "Subject" {
					got = strings.Join(strings.Fields(got), " ")
				}
				if got != want && !(strings.Contains(want, "<") && addrEqual(got, want)) {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			for k, want := range tc.parts {
				if parts[k] != want {
					t.Errorf("%s part = %q, want %q", k, parts[k], want)
				}
			}
			for _, k := range tc.noFields {
				if h.Get(k) != "" {
					t.Errorf("%s: present", k)
				}
			}
			if tc.ctes != nil {
				if got := ctesOf(msg); !slices.Equal(got, tc.ctes) {
					t.Errorf("encodings %v, want %v", got, tc.ctes)
				}
			}
			if h.Get("Mime-Version") != "1.0" {
				t.Error("no MIME-Version: 1.0")
			}
		})
	}
}

func addrEqual(got, want string) bool {
	a, err1 := mail.ParseAddressList(got)
	b, err2 := mail.ParseAddressList(want)
	if err1 != nil || err2 != nil || len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Address != b[i].Address || a[i].Name != b[i].Name {
			return false
		}
	}
	return true
}

func ctesOf(msg []byte) []string {
	var out []string
	for _, line := range strings.Split(string(msg), "\r\n") {
		if v, ok := strings.CutPrefix(line, "Content-Transfer-Encoding: "); ok {
			out = append(out, v)
		}
	}
	return out
}

func TestBuildRefuses(t *testing.T) {
	t.Parallel()
	base := func(mod func(*Request)) Request {
		r := Request{From: "app@example.com", To: []string{"a@example.net"}, Text: ptr("x")}
		mod(&r)
		return r
	}
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"no from", base(func(r *Request) { r.From = "" }), "from:"},
		{"no to", base(func(r *Request) { r.To = nil }), "to:"},
		{"CRLF in a recipient", base(func(r *Request) { r.To = []string{"a@example.net\r\nRCPT TO:<x@y>"} }), "to[0]"},
		{"no body", base(func(r *Request) { r.Text = nil }), "give raw"},
		{"raw and parts", base(func(r *Request) { r.Raw = "eA==" }), "raw:"},
		{"CRLF in a header: injection", base(func(r *Request) { r.Headers = map[string]string{"X-A": "1\r\nBcc: victim@example.org"} }), "CR or LF"},
		{"LF in a header", base(func(r *Request) { r.Headers = map[string]string{"X-A": "1\nX-B: 2"} }), "CR or LF"},
		{"CR in the subject", base(func(r *Request) { r.Subject = "hi\rBcc: x@y" }), "CR or LF"},
		{"NUL in a header", base(func(r *Request) { r.Headers = map[string]string{"X-A": "a\x00b"} }), "control character"},
		{"bad field name", base(func(r *Request) { r.Headers = map[string]string{"X A": "1"} }), "field name"},
		{"colon in a field name", base(func(r *Request) { r.Headers = map[string]string{"X-A:B": "1"} }), "field name"},
		{"Content-Type", base(func(r *Request) { r.Headers = map[string]string{"content-type": "text/html"} }), "written by sluice"},
		{"Bcc", base(func(r *Request) { r.Headers = map[string]string{"Bcc": "x@example.org"} }), "Bcc"},
		{"one field twice", base(func(r *Request) { r.Headers = map[string]string{"X-A": "1", "x-a": "2"} }), "same field"},
		{"subject twice", base(func(r *Request) { r.Subject = "a"; r.Headers = map[string]string{"Subject": "b"} }), "Subject"},
		{"bad From field", base(func(r *Request) { r.Headers = map[string]string{"From": "not an address"} }), "addresses"},
		{"bad envelope From as field", base(func(r *Request) { r.From = "not an address" }), "from:"},
		{"a word too long to fold", base(func(r *Request) { r.Headers = map[string]string{"X-A": strings.Repeat("x", 1000)} }), "cannot be folded"},
		{"raw not base64", Request{From: "a@example.com", To: []string{"b@example.net"}, Raw: "!!!"}, "not base64"},
		{"raw with a lone CR", Request{From: "a@example.com", To: []string{"b@example.net"}, Raw: base64.StdEncoding.EncodeToString([]byte("Subject: x\r\n\r\na\rb\r\n"))}, "CR not followed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.req.Message()
			var inv *invalid
			if !errors.As(err, &inv) || !strings.Contains(inv.detail, tc.want) {
				t.Fatalf("err = %v, want an invalid request naming %q", err, tc.want)
			}
		})
	}
}

func TestRawLineEndings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"Subject: x\r\n\r\nbody\r\n", "Subject: x\r\n\r\nbody\r\n"},
		{"Subject: x\n\nbody\n", "Subject: x\r\n\r\nbody\r\n"},
		{"Subject: x\r\n\nbody", "Subject: x\r\n\r\nbody"},
	} {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
			r := Request{From: "a@example.com", To: []string{"b@example.net"}, Raw: enc.EncodeToString([]byte(tc.in))}
			got, err := r.Message()
			if err != nil || string(got) != tc.want {
				t.Errorf("%q: %q, %v; want %q", tc.in, got, err, tc.want)
			}
		}
	}
}

// FuzzBuildMessage: whatever the strings, a built message parses back,
// has CRLF lines of at most 998 octets, carries exactly the header fields
// asked for (no injected field), and its text decodes to the text given.
func FuzzBuildMessage(f *testing.F) {
	f.Add("app@example.com", "Hello", "hi there", "", "X-Tag", "v")
	f.Add("app@example.com", "Café", "voilà\nune ligne\r\n", "<b>x</b>", "X-A", "1\r\nBcc: x@y")
	f.Add("a@b.c", strings.Repeat("é", 300), strings.Repeat("日本", 500), "", "Reply-To", "Zoë <z@example.com>")
	f.Add("a@b.c", "", "\r\r\n\n.", "", "x", "\t")
	f.Fuzz(func(t *testing.T, from, subject, text, html, hname, hval string) {
		r := Request{From: from, To: []string{"rcpt@example.net"}, Subject: subject, Text: &text, Headers: map[string]string{hname: hval}}
		if html != "" {
			r.HTML = &html
		}
		msg, err := r.Message()
		if err != nil {
			var inv *invalid
			if !errors.As(err, &inv) {
				t.Fatalf("not an invalid-request error: %v", err)
			}
			return
		}
		h, parts := parse(t, msg)
		want := map[string]bool{"Mime-Version": true, "Content-Type": true, "From": true, "To": true}
		if html == "" {
			want["Content-Transfer-Encoding"] = true
		}
		if subject != "" {
			want["Subject"] = true
		}
		want[canon(hname)] = true
		for k := range h {
			if !want[k] {
				t.Fatalf("field %q that nobody asked for:\n%s", k, msg)
			}
		}
		if got := len(h[canon(hname)]); got != 1 {
			t.Fatalf("field %q %d times", hname, got)
		}
		norm := strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n"), "\n", "\r\n")
		got := parts["text/plain"]
		if got != norm && got != norm+"\r\n" {
			t.Fatalf("text decodes to %q, want %q", got, norm)
		}
	})
}

func canon(k string) string { return textproto.CanonicalMIMEHeaderKey(k) }
