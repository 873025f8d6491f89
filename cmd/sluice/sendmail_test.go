package main

import (
	"bufio"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestParseSendmailArgs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want sendmailArgs
		code int // 0 = parses
	}{
		{"php", []string{"-t", "-i"}, sendmailArgs{config: defaultSendmailConfig, extract: true, ignoreDots: true}, 0},
		{"cron", []string{"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"},
			sendmailArgs{config: defaultSendmailConfig, fullName: "CronDaemon", ignoreDots: true, rcpts: []string{"root"}}, 0},
		{"from attached and detached", []string{"-fa@b.example", "-F", "A B", "x@y.example"},
			sendmailArgs{config: defaultSendmailConfig, from: "a@b.example", fromSet: true, fullName: "A B", rcpts: []string{"x@y.example"}}, 0},
		{"-r and -oi", []string{"-r", "<>", "-oi", "--", "-odd@y.example"},
			sendmailArgs{config: defaultSendmailConfig, from: "<>", fromSet: true, ignoreDots: true, rcpts: []string{"-odd@y.example"}}, 0},
		{"config", []string{"--config", "/x.toml", "-bm", "-odi", "-oQ/var/spool", "-v", "-n", "-Am", "x@y"},
			sendmailArgs{config: "/x.toml", rcpts: []string{"x@y"}}, 0},
		{"config=", []string{"--config=/y.toml", "-bs"}, sendmailArgs{config: "/y.toml", smtpMode: true}, 0},
		{"smtp", []string{"--smtp", "127.0.0.1:25", "-t", "--smtp=[::1]:25"}, sendmailArgs{config: defaultSendmailConfig, smtp: "[::1]:25", extract: true}, 0},
		{"dsn flags", []string{"-N", "success,delay", "-Rhdrs", "-V", "env1", "x@y"},
			sendmailArgs{config: defaultSendmailConfig, notify: "SUCCESS,DELAY", ret: "HDRS", envid: "env1", rcpts: []string{"x@y"}}, 0},
		{"ignored with values", []string{"-C", "/etc/mail/sendmail.cf", "-h", "5", "-L", "tag", "-O", "X=y", "-X", "/log", "x@y"},
			sendmailArgs{config: defaultSendmailConfig, rcpts: []string{"x@y"}}, 0},
		{"daemon mode", []string{"-bd"}, sendmailArgs{}, exUsage},
		{"queue run", []string{"-q"}, sendmailArgs{}, exUsage},
		{"unknown", []string{"-Z"}, sendmailArgs{}, exUsage},
		{"missing value", []string{"-f"}, sendmailArgs{}, exUsage},
		{"never with others", []string{"-N", "never,success", "x@y"}, sendmailArgs{}, exUsage},
		{"bad RET", []string{"-R", "all", "x@y"}, sendmailArgs{}, exUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSendmailArgs(tt.args)
			if tt.code != 0 {
				var ee *exitErr
				if !errors.As(err, &ee) || ee.code != tt.code {
					t.Fatalf("err = %v, want exit %d", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestReadSendmailHeader(t *testing.T) {
	tests := []struct {
		name, in   string
		dotEnds    bool
		hdr, first string
		body       bool
		rest       string // what is left for the body copy
	}{
		{"lf header and body", "To: a@b\nSubject: x\n\nhello\n", false, "To: a@b\nSubject: x\n", "", true, "hello\n"},
		{"crlf", "To: a@b\r\n\r\nhello\r\n", false, "To: a@b\r\n", "", true, "hello\r\n"},
		{"folded", "To: a@b,\n c@d\n\nx", false, "To: a@b,\n c@d\n", "", true, "x"},
		{"no header", "just text\nmore\n", false, "", "just text\n", true, "more\n"},
		{"mbox From line", "From a@b Mon Jan 1\nTo: a@b\n\nx\n", false, "To: a@b\n", "", true, "x\n"},
		{"dot ends header", "To: a@b\n.\nafter\n", true, "To: a@b\n", "", false, "after\n"},
		{"dot is a header line with -i", "To: a@b\n.\n", false, "To: a@b\n", ".\n", true, ""},
		{"headers only at EOF", "To: a@b\nSubject: s", false, "To: a@b\nSubject: s\r\n", "", false, ""},
		{"empty", "", false, "", "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := bufio.NewReader(strings.NewReader(tt.in))
			hdr, first, body, err := readSendmailHeader(in, tt.dotEnds)
			if err != nil {
				t.Fatal(err)
			}
			rest, _ := in.ReadString(0)
			if string(hdr) != tt.hdr || string(first) != tt.first || body != tt.body || rest != tt.rest {
				t.Errorf("got hdr=%q first=%q body=%v rest=%q\nwant hdr=%q first=%q body=%v rest=%q",
					hdr, first, body, rest, tt.hdr, tt.first, tt.body, tt.rest)
			}
		})
	}
}

func TestCopyBodyStopsAtDot(t *testing.T) {
	var b strings.Builder
	in := bufio.NewReader(strings.NewReader("a\n..b\n.\nnot sent\n"))
	if err := copyBody(&b, in, true); err != nil {
		t.Fatal(err)
	}
	if b.String() != "a\n..b\n" {
		t.Errorf("body %q", b.String())
	}
}

func TestHeaderRecipients(t *testing.T) {
	tests := []struct {
		name, hdr string
		want      []string
	}{
		{"to cc bcc", "From: x@y\nTo: A <a@ex.test>, b@ex.test\nCc: \"C, Jr\" <c@ex.test>\nBcc: d@ex.test\nSubject: hi\n",
			[]string{"a@ex.test", "b@ex.test", "c@ex.test", "d@ex.test"}},
		{"folded", "To: a@ex.test,\n\tb@ex.test\n", []string{"a@ex.test", "b@ex.test"}},
		{"group", "To: undisclosed-recipients:;\nBcc: e@ex.test\n", []string{"e@ex.test"}},
		{"resent wins", "To: a@ex.test\nResent-To: r@ex.test\nResent-Bcc: s@ex.test\n", []string{"r@ex.test", "s@ex.test"}},
		{"bare local part (cron)", "To: root\n", []string{"root"}},
		{"encoded name", "To: =?utf-8?q?J=C3=B6rg?= <j@ex.test>\n", []string{"j@ex.test"}},
		{"none", "Subject: x\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := headerRecipients([]byte(tt.hdr))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := headerRecipients([]byte("To: a b c\n")); err == nil {
		t.Error("unreadable To accepted")
	}
}

func TestRewriteHeader(t *testing.T) {
	got := string(rewriteHeader([]byte("To: a@ex.test\nBcc: hidden@ex.test,\n  other@ex.test\nSubject: s\n"), "u@h.test", "Cron Daemon", "h.test"))
	want := "From: \"Cron Daemon\" <u@h.test>\r\nTo: a@ex.test\nSubject: s\n"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	got = string(rewriteHeader([]byte("From: me@ex.test\nbcc: x@ex.test\n"), "u@h.test", "N", "h.test"))
	if got != "From: me@ex.test\n" {
		t.Errorf("From kept, Bcc removed: got %q", got)
	}
}

func TestSubmitAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:2525": "127.0.0.1:2525",
		"0.0.0.0:25":     "127.0.0.1:25",
		"[::]:25":        "[::1]:25",
		":25":            "127.0.0.1:25",
		"localhost:25":   "localhost:25",
	} {
		if got, err := submitAddr(in); err != nil || got != want {
			t.Errorf("submitAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := submitAddr(""); err == nil {
		t.Error("listen.smtp off accepted")
	}
}

func TestSmtpFailExitCodes(t *testing.T) {
	tests := []struct {
		stage string
		err   error
		want  int
	}{
		{"MAIL FROM", errors.New("connection reset"), exTempFail},
		{"RCPT TO:<a@b>", &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}}, exTempFail},
		{"MAIL FROM", &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}}, exNoPerm},
		{"RCPT TO:<a@b>", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}}, exNoUser},
		{"end of DATA", &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}}, exDataErr},
		{"end of DATA", &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 4, 6}}, exUnavailable},
	}
	for _, tt := range tests {
		var ee *exitErr
		if err := smtpFail(tt.stage, tt.err); !errors.As(err, &ee) || ee.code != tt.want {
			t.Errorf("%s %v: %v, want exit %d", tt.stage, tt.err, err, tt.want)
		}
	}
}
