package outbound

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"sluice/reply"
)

func TestReadReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    reply.Reply
		wantErr bool
	}{
		{name: "plain", in: "250 ok\r\n", want: reply.Reply{Code: 250, Text: "ok"}},
		{name: "enhanced", in: "550 5.1.1 no such user\r\n", want: reply.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"}},
		{name: "code only", in: "421\r\n", want: reply.Reply{Code: 421}},
		{name: "bare LF tolerated", in: "250 ok\n", want: reply.Reply{Code: 250, Text: "ok"}},
		{name: "multi-line, enhanced on each line (RFC 2034)",
			in:   "421-4.7.0 [TSS04] Messages temporarily deferred\r\n421 4.7.0 due to unexpected volume\r\n",
			want: reply.Reply{Code: 421, Enhanced: "4.7.0", Text: "[TSS04] Messages temporarily deferred due to unexpected volume"}},
		{name: "class must match the basic code", in: "550 4.7.1 odd\r\n", want: reply.Reply{Code: 550, Text: "4.7.1 odd"}},
		{name: "not an enhanced code", in: "421 4.7 try later\r\n", want: reply.Reply{Code: 421, Text: "4.7 try later"}},
		{name: "detail too long", in: "451 4.7.6500 x\r\n", want: reply.Reply{Code: 451, Text: "4.7.6500 x"}},
		{name: "Microsoft three-digit detail", in: "451 4.7.650 The mail server has been temporarily rate limited\r\n",
			want: reply.Reply{Code: 451, Enhanced: "4.7.650", Text: "The mail server has been temporarily rate limited"}},
		{name: "no enhanced code, keywords kept", in: "421 Too many sessions opened\r\n", want: reply.Reply{Code: 421, Text: "Too many sessions opened"}},
		{name: "control characters neutralised", in: "550 5.7.1 a\x00b\x1bc\r\n", want: reply.Reply{Code: 550, Enhanced: "5.7.1", Text: "a b c"}},
		{name: "code changes mid-reply", in: "250-a\r\n251 b\r\n", wantErr: true},
		{name: "not digits", in: "2x0 ok\r\n", wantErr: true},
		{name: "out of range", in: "999 what\r\n", wantErr: true},
		{name: "bad separator", in: "250_ok\r\n", wantErr: true},
		{name: "truncated", in: "250-a\r\n250 b", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "overlong line", in: "250 " + strings.Repeat("x", maxReplyLine) + "\r\n", wantErr: true},
		{name: "too many lines", in: strings.Repeat("250-x\r\n", maxReplyLines+1) + "250 x\r\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := readResponse(bufio.NewReaderSize(strings.NewReader(tt.in), maxReplyLine))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("no error, got %+v", r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := toReply(reply.StageRcpt, r)
			tt.want.Stage = reply.StageRcpt
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestExtensions(t *testing.T) {
	t.Parallel()
	ext := extensions(response{Code: 250, Lines: []string{"mx.test hi", "8bitmime", "SIZE 1000", "AUTH PLAIN LOGIN"}})
	want := map[string]string{"8BITMIME": "", "SIZE": "1000", "AUTH": "PLAIN LOGIN"}
	if len(ext) != len(want) {
		t.Fatalf("ext = %v", ext)
	}
	for k, v := range want {
		if ext[k] != v {
			t.Errorf("ext[%s] = %q, want %q", k, ext[k], v)
		}
	}
}

func TestBareCRLF(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		bare bool
	}{
		{"", false}, {"a\r\nb\r\n", false}, {"a", false},
		{"\r", true}, {"\n", true}, {"a\rb\r\n", true}, {"a\nb", true}, {"a\r\r\n", true}, {"a\r\n\n", true},
	}
	for _, tt := range tests {
		_, err := streamDotStuff(strings.NewReader(tt.in))
		if got := errors.Is(err, errBareCRLF); got != tt.bare {
			t.Errorf("bare CR/LF in %q = %v (%v)", tt.in, got, err)
		}
	}
}

// FuzzReadReply: whatever a server sends, the parser returns a reply
// with a valid code and single-line, control-free text, or an error.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"250 ok\r\n", "550 5.1.1 no\r\n", "421-4.7.0 a\r\n421 4.7.0 b\r\n", "250-x\n250 y\n",
		"451 4.7.650 rate\r\n", "5", "250-", "220 \x00\r\n", "550 5.1.10 null\r\n", "550 4.4.4 x\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, err := readResponse(bufio.NewReaderSize(strings.NewReader(in), maxReplyLine))
		if err != nil {
			if !errors.Is(err, errBadReply) && !errors.Is(err, io.EOF) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		rep := toReply(reply.StageMail, r)
		if rep.Code < 200 || rep.Code > 599 {
			t.Fatalf("code %d", rep.Code)
		}
		if strings.ContainsFunc(rep.Text, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
			t.Fatalf("control character in text %q", rep.Text)
		}
		if rep.Enhanced != "" {
			if e, _ := splitEnhanced(rep.Code, rep.Enhanced); e != rep.Enhanced {
				t.Fatalf("enhanced %q does not re-parse", rep.Enhanced)
			}
			if int(rep.Enhanced[0]-'0') != rep.Code/100 {
				t.Fatalf("class of %q does not match %d", rep.Enhanced, rep.Code)
			}
		}
	})
}
