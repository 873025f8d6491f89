package fakemx

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		parse   func(string) (any, error)
		want    any
		wantErr bool
	}{
		{"10s-25s", wrap(ParseWindow), Window{10 * time.Second, 25 * time.Second}, false},
		{"25s-10s", wrap(ParseWindow), nil, true},
		{"10s", wrap(ParseWindow), nil, true},
		{"20s:3:50", wrap(ParseLimits), Limits{20 * time.Second, 3, 50}, false},
		{"20s:3", wrap(ParseLimits), nil, true},
		{"20s:-1:5", wrap(ParseLimits), nil, true},
		{"rcpt:foo:550 5.1.1 no such user", wrap(ParseRule), Rule{Stage: "rcpt", Match: "foo", Reply: "550 5.1.1 no such user"}, false},
		{"data-end*2::451 4.3.0 later: really", wrap(ParseRule), Rule{Stage: "data-end", Reply: "451 4.3.0 later: really", Times: 2}, false},
		{`mail::421-4.7.0 a\n421 4.7.0 b`, wrap(ParseRule), Rule{Stage: "mail", Reply: "421-4.7.0 a\n421 4.7.0 b"}, false},
		{"data::250 2.0.0 ok", wrap(ParseRule), Rule{Stage: "data", Reply: "250 2.0.0 ok"}, false},
		{"helo::250 ok", wrap(ParseRule), nil, true},
		{"5:10s:60s:30s", wrap(ParsePenalty), PenaltyBox{5, 10 * time.Second, time.Minute, 30 * time.Second}, false},
		{"5:10s:60s", wrap(ParsePenalty), PenaltyBox{5, 10 * time.Second, time.Minute, 0}, false},
		{"0:10s:60s", wrap(ParsePenalty), nil, true},
		{"5:0s:60s", wrap(ParsePenalty), nil, true},
		{"5:10s", wrap(ParsePenalty), nil, true},
		{"rcpt*0::550 x", wrap(ParseRule), nil, true},
		{"rcpt:x", wrap(ParseRule), nil, true},
	}
	for _, tc := range tests {
		got, err := tc.parse(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: err %v, wantErr %v", tc.in, err, tc.wantErr)
			continue
		}
		if err == nil && got != tc.want {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func wrap[T any](f func(string) (T, error)) func(string) (any, error) {
	return func(s string) (any, error) {
		v, err := f(s)
		if err != nil {
			return nil, err
		}
		return v, nil
	}
}

func TestParseReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, wire string
		ok       bool
	}{
		{"250 ok", "250 ok\r\n", true},
		{"421", "421 \r\n", true},
		{"550-a\n550 b", "550-a\r\n550 b\r\n", true},
		{"450 a\nb", "450-a\r\n450 b\r\n", true},
		{"600 no", "", false},
		{"25 no", "", false},
		{"250x", "", false},
	}
	for _, tc := range tests {
		r, err := parseReply(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		if err == nil && string(r.wire()) != tc.wire {
			t.Errorf("%q: wire %q, want %q", tc.in, r.wire(), tc.wire)
		}
	}
}

func TestMessageID(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"Subject: x\r\nMessage-ID: <a@b>\r\n\r\n", "<a@b>"},
		{"message-id:<a@b>\n\n", "<a@b>"},
		{"Message-ID:\r\n\t<folded@b>\r\nX: y\r\n\r\n", "<folded@b>"},
		{"Subject: x\r\n\r\nMessage-ID: <body@b>\r\n", ""},
		{"X-Message-ID: <no@b>\r\n\r\n", ""},
	}
	for _, tc := range tests {
		if got := messageID([]byte(tc.in)); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParsePath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		arg, prefix, want string
		ok                bool
	}{
		{"FROM:<a@b>", "FROM:", "a@b", true},
		{"from: <a@b> SIZE=10 BODY=8BITMIME", "FROM:", "a@b", true},
		{"FROM:<>", "FROM:", "", true},
		{"TO:<@r1,@r2:a@b>", "TO:", "a@b", true},
		{"TO:a@b", "TO:", "", false},
		{"TO:<a@b", "TO:", "", false},
		{"FROM:<a@b>", "TO:", "", false},
	}
	for _, tc := range tests {
		got, ok := parsePath(tc.arg, tc.prefix)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: got %q %v", tc.arg, got, ok)
		}
	}
}

func FuzzParseRule(f *testing.F) {
	for _, s := range []string{"rcpt:foo:550 5.1.1 no such user", "data-end*2::451 x", `mail::421-a\n421 b`, "x", "::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s)
		if err != nil {
			return
		}
		cr, err := compileRule(r)
		if err != nil {
			t.Fatalf("ParseRule accepted %q but compile fails: %v", s, err)
		}
		w := cr.reply.wire()
		if !bytes.HasSuffix(w, []byte("\r\n")) || bytes.Count(w, []byte("\r\n")) != len(cr.reply.Lines) {
			t.Fatalf("%q renders %q", s, w)
		}
	})
}

func FuzzReadData(f *testing.F) {
	for _, s := range []string{
		"Message-ID: <a@b>\r\n\r\nhi\r\n.\r\n",
		"..x\r\n.\r\n",
		"a\n.\nb\r\n.\r\n",
		"a\rb\r\n.\r\n",
		"no end",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := bufio.NewReaderSize(strings.NewReader(s), 16)
		res, err := readData(r, true)
		if err != nil {
			return
		}
		if !strings.Contains(s, "\r\n.\r\n") && !strings.HasPrefix(s, ".\r\n") {
			t.Fatalf("%q ended without a terminator", s)
		}
		if len(res.raw) > len(s) {
			t.Fatalf("body longer than input")
		}
		_ = messageID(res.raw)
	})
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"FROM:<a@b>", "FROM: <a@b> SIZE=1", "FROM:<@x:a@b>", "FROM:<"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, ok := parsePath(s, "FROM:")
		if ok && strings.ContainsAny(a, "<> \t") {
			t.Fatalf("%q gave %q", s, a)
		}
	})
}

func TestReadData(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, body string
		bare           bool
	}{
		{"plain", "a\r\nb\r\n.\r\n", "a\r\nb\r\n", false},
		{"dot stuffing", "..x\r\n..\r\n.\r\n", ".x\r\n.\r\n", false},
		{"lone LF", "a\nb\r\n.\r\n", "a\nb\r\n", true},
		{"lone CR", "a\rb\r\n.\r\n", "a\rb\r\n", true},
		{"LF dot LF is content", "a\n.\nb\r\n.\r\n", "a\n.\nb\r\n", true},
		{"long line", strings.Repeat("x", 100) + "\r\n.\r\n", strings.Repeat("x", 100) + "\r\n", false},
	}
	for _, tc := range tests {
		// A 16-byte buffer makes ReadSlice split long lines.
		res, err := readData(bufio.NewReaderSize(strings.NewReader(tc.in+"NEXT"), 16), true)
		if err != nil || string(res.raw) != tc.body || res.bare != tc.bare {
			t.Errorf("%s: got %q bare=%v err=%v, want %q bare=%v", tc.name, res.raw, res.bare, err, tc.body, tc.bare)
		}
	}
}
