package admin

import (
	"strings"
	"testing"
	"unicode/utf8"

	"sluice/config"
	"sluice/policy"
	"sluice/reply"
)

func TestParseReplyLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line      string
		code      int
		enh, text string
	}{
		{"421 4.7.0 Too many connections", 421, "4.7.0", "Too many connections"},
		{"  550-5.1.1 The email account does not exist", 550, "5.1.1", "The email account does not exist"},
		{"450 greylisted, try again in 300 seconds", 450, "", "greylisted, try again in 300 seconds"},
		{"421", 421, "", ""},
		{"554 5.7.1", 554, "5.7.1", ""},
		{"connection refused", 0, "", "connection refused"},
		{"42 short", 0, "", "42 short"},
		{"4210 too long", 0, "", "4210 too long"},
		{"HTTP/1.1 421 Misdirected Request", 0, "", "HTTP/1.1 421 Misdirected Request"},
		{"452 4.2.2 mailbox full\r\n", 452, "4.2.2", "mailbox full"},
	}
	for _, tc := range tests {
		r := ParseReplyLine(tc.line)
		if r.Code != tc.code || r.Enhanced != tc.enh || r.Text != tc.text {
			t.Errorf("ParseReplyLine(%q) = %d %q %q, want %d %q %q", tc.line, r.Code, r.Enhanced, r.Text, tc.code, tc.enh, tc.text)
		}
	}
}

func TestExplain(t *testing.T) {
	t.Parallel()
	o := policy.OptionsFrom(config.Default())
	o.Rules, o.Logger = []policy.Rule{{Match: `TSS04`, Class: policy.ClassSuspend, For: 7200e9}}, quietLog()
	p, err := policy.New(o)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		stage reply.Stage
		line  string
		class policy.Class
		http  bool
		rule  string
	}{
		{reply.StageRcpt, "421 4.7.0 Too many connections, slow down", policy.ClassThrottle, false, ""},
		{reply.StageRcpt, "450 4.7.1 greylisted, try again in 300 seconds", policy.ClassGreylist, false, ""},
		{reply.StageRcpt, "550 5.1.1 user unknown", policy.ClassPermanent, false, ""},
		{reply.StageGreeting, "421 4.7.0 [TSS04] Messages temporarily deferred", policy.ClassSuspend, false, "config:1"},
		{reply.StageData, "250 2.0.0 Ok", policy.ClassProtocol, false, "protocol:data"},
		{reply.StageDataEnd, "250 2.0.0 Ok: queued", policy.ClassSuccess, false, "generic:2xx"},
		{reply.StageRcpt, "421 Misdirected Request", "", true, ""},
		{reply.StageRcpt, "HTTP/2 421 Misdirected Request", "", true, ""},
		// Issue 11 (a): a delay next to words about connections is a
		// throttle, and the delay is the pause hint.
		{reply.StageGreeting, "421 4.7.0 Too many connections from your IP, try again in 60 seconds", policy.ClassThrottle, false, "keyword:too many connections"},
	}
	for _, tc := range tests {
		e := Explain(p, tc.stage, tc.line)
		if tc.class != "" && e.Class != string(tc.class) {
			t.Errorf("%q: class %s, want %s (%s)", tc.line, e.Class, tc.class, e.Rule)
		}
		if (e.HTTP != "") != tc.http {
			t.Errorf("%q: HTTP note %q, want %v", tc.line, e.HTTP, tc.http)
		}
		if tc.http && !strings.Contains(e.HTTP, "RFC 9110") {
			t.Errorf("%q: note does not cite RFC 9110: %s", tc.line, e.HTTP)
		}
		if tc.rule != "" && e.Rule != tc.rule {
			t.Errorf("%q: rule %s, want %s", tc.line, e.Rule, tc.rule)
		}
		if e.Class == string(policy.ClassThrottle) && e.Delay != "" && !strings.Contains(e.Reaction, "names a delay ("+e.Delay+")") {
			t.Errorf("%q: the reaction does not say the delay %s is the pause: %s", tc.line, e.Delay, e.Reaction)
		}
		if e.Reaction == "" || e.Reason == "" {
			t.Errorf("%q: no reaction or reason: %+v", tc.line, e)
		}
	}
}

// FuzzParseReplyLine: any input parses without panic, codes are valid
// SMTP reply codes, and the classifier accepts the result.
func FuzzParseReplyLine(f *testing.F) {
	for _, s := range []string{"421 4.7.0 Too many connections", "550-5.1.1 x", "HTTP/1.1 421 Misdirected Request", "", "4", "999 9.9.9 x", "250 2.0.0\r\nOK", "\x00\xff"} {
		f.Add(s)
	}
	o := policy.OptionsFrom(config.Default())
	o.Logger = quietLog()
	p, err := policy.New(o)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r := ParseReplyLine(line)
		if r.Code != 0 && (r.Code < 200 || r.Code > 599) {
			t.Fatalf("code %d from %q", r.Code, line)
		}
		if utf8.ValidString(line) && !utf8.ValidString(r.Text) {
			t.Fatalf("text became invalid UTF-8: %q", r.Text)
		}
		if strings.ContainsAny(r.Text, "\r\n") {
			t.Fatalf("text keeps a line break: %q", r.Text)
		}
		e := Explain(p, reply.StageRcpt, line)
		if e.Class == "" || e.Reaction == "" {
			t.Fatalf("no class/reaction for %q: %+v", line, e)
		}
	})
}
