package dsn

import (
	"strings"
	"testing"
)

func TestParseNotify(t *testing.T) {
	tests := []struct {
		in   []string
		want Notify
		ok   bool
	}{
		{[]string{"SUCCESS"}, NotifySuccess, true},
		{[]string{"success", "Failure", "DELAY"}, NotifySuccess | NotifyFailure | NotifyDelay, true},
		{[]string{"NEVER"}, NotifyNever, true},
		{[]string{"NEVER", "SUCCESS"}, 0, false},
		{[]string{"SOMETIMES"}, 0, false},
		{nil, 0, true},
	}
	for _, tt := range tests {
		got, err := ParseNotify(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseNotify(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if tt.ok && !got.Valid() {
			t.Errorf("%v not Valid", got)
		}
	}
	if (NotifyNever | NotifySuccess).Valid() || Notify(1<<5).Valid() {
		t.Error("invalid sets reported valid")
	}
}

func TestNotifyWants(t *testing.T) {
	tests := []struct {
		n                       Notify
		success, failure, delay bool
		str                     string
	}{
		{0, false, true, true, ""}, // absent: FAILURE,DELAY
		{NotifyNever, false, false, false, "NEVER"},
		{NotifySuccess, true, false, false, "SUCCESS"},
		{NotifyFailure, false, true, false, "FAILURE"},
		{NotifyDelay | NotifySuccess, true, false, true, "SUCCESS,DELAY"},
	}
	for _, tt := range tests {
		if tt.n.Success() != tt.success || tt.n.Failure() != tt.failure || tt.n.Delay() != tt.delay || tt.n.String() != tt.str {
			t.Errorf("%q: success %v failure %v delay %v", tt.n.String(), tt.n.Success(), tt.n.Failure(), tt.n.Delay())
		}
	}
}

func TestXTextAndORcpt(t *testing.T) {
	if got := XText("a+b=c d"); got != "a+2Bb+3Dc+20d" {
		t.Errorf("XText = %q", got)
	}
	for in, want := range map[string]string{
		"rfc822;a+x@ex.test": "rfc822;a+2Bx@ex.test",
		"utf-8;jörg@ex.test": `utf-8;j\x{F6}rg@ex.test`,
		"bad":                "",
	} {
		if got := ORcptParam(in); got != want {
			t.Errorf("ORcptParam(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBuildDSNParameters: ENVID, ORCPT and RET in the DSN (RFC 3464
// §2.2.1, §2.3.1), and the success and delay reports.
func TestBuildDSNParameters(t *testing.T) {
	small := []byte("From: a@example.com\r\nSubject: s\r\n\r\nsecret body\r\n")
	base := func() Report {
		r := sampleReport()
		r.Original, r.OriginalSize = small, 0
		r.EnvID = "env+42"
		return r
	}
	tests := []struct {
		name     string
		edit     func(r *Report)
		subject  string
		action   string
		status   string
		whole    bool // the original returned as message/rfc822
		wantText string
	}{
		{"failure returns a small original whole", func(r *Report) {}, "Undelivered Mail Returned to Sender", "failed", "5.1.1", true, "could not be delivered"},
		{"RET=HDRS returns headers only", func(r *Report) { r.Ret = RetHdrs }, "Undelivered Mail Returned to Sender", "failed", "5.1.1", false, "could not be delivered"},
		{"relayed", func(r *Report) {
			r.Recipients = []Recipient{{Addr: "a@dest.test", Action: "relayed", RemoteMTA: "mx1.dest.test", Diagnostic: "250 2.0.0 ok", ORcpt: "rfc822;orig@dest.test"}}
		}, "Successful Mail Delivery Report", "relayed", "2.0.0", false, "does not report delivery status"},
		{"delayed", func(r *Report) {
			r.Recipients = []Recipient{{Addr: "a@dest.test", Action: "delayed", Status: "4.2.1", Diagnostic: "451 4.2.1 try later", ORcpt: "rfc822;orig@dest.test"}}
		}, "Delayed Mail (still being retried)", "delayed", "4.2.1", false, "delayed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base()
			tt.edit(&r)
			out, err := Build(r)
			if err != nil {
				t.Fatal(err)
			}
			checkWire(t, out)
			p := parse(t, out)
			if got := p.msg.Header.Get("Subject"); got != tt.subject {
				t.Errorf("Subject %q, want %q", got, tt.subject)
			}
			blocks := fields(t, p.parts[1].body)
			if got := blocks[0].Get("Original-Envelope-Id"); got != "env+2B42" {
				t.Errorf("Original-Envelope-Id %q", got)
			}
			if got := blocks[1].Get("Action"); got != tt.action {
				t.Errorf("Action %q, want %q", got, tt.action)
			}
			if got := blocks[1].Get("Status"); got != tt.status {
				t.Errorf("Status %q, want %q", got, tt.status)
			}
			if tt.action != "failed" {
				if got := blocks[1].Get("Original-Recipient"); got != "rfc822;orig@dest.test" {
					t.Errorf("Original-Recipient %q", got)
				}
			}
			ct := p.parts[2].header.Get("Content-Type")
			if whole := ct == "message/rfc822"; whole != tt.whole {
				t.Errorf("returned part %q, want whole=%v", ct, tt.whole)
			}
			if !tt.whole && strings.Contains(string(p.parts[2].body), "secret body") {
				t.Error("the body was returned")
			}
			if !strings.Contains(strings.ReplaceAll(string(p.parts[0].body), "=\r\n", ""), tt.wantText) {
				t.Errorf("human part lacks %q:\n%s", tt.wantText, p.parts[0].body)
			}
		})
	}
}
