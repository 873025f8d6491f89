package auth

import (
	"strings"
	"testing"
)

func TestParseFrom(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, header, domain, problem string
	}{
		{"plain", "From: a@Example.TEST\r\n", "example.test", ""},
		{"display name", "From: \"A, B\" <a@example.test>\r\n", "example.test", ""},
		{"folded", "From: A\r\n <a@example.test>\r\n", "example.test", ""},
		{"lower-case name", "from: a@example.test\r\n", "example.test", ""},
		{"space before colon", "From : a@example.test\r\n", "example.test", ""},
		{"two From", "From: a@example.test\r\nFrom: b@bank.test\r\n", "", "2 From headers"},
		{"From and From :", "From: a@example.test\r\nFROM\t: b@bank.test\r\n", "", "2 From headers"},
		{"two addresses", "From: a@example.test, b@bank.test\r\n", "", "2 addresses"},
		{"group", "From: team: a@example.test, b@example.test;\r\n", "", "2 addresses"},
		{"empty group", "From: undisclosed:;\r\n", "", ""},
		{"garbage", "From: ><\r\n", "", "cannot be parsed"},
		{"none", "Sender: a@example.test\r\n", "", "no From header"},
		{"address literal", "From: a@[192.0.2.1]\r\n", "", "no domain name"},
		{"encoded display name", "From: =?iso-8859-1?q?J=F6rg?= <j@example.test>\r\n", "example.test", ""},
		{"unknown charset", "From: =?x-weird?q?J=F6rg?= <j@example.test>\r\n", "example.test", ""},
		{"encoded address", "From: =?utf-8?b?YUBleGFtcGxlLnRlc3Q=?=\r\n", "", "cannot be parsed"},
		{"From in body ignored", "Subject: x\r\n\r\nFrom: b@bank.test\r\n", "", "no From header"},
	}
	for _, tc := range tests {
		r := parseFrom([]byte(tc.header + "\r\nbody\r\n"))
		if r.Domain != tc.domain {
			t.Errorf("%s: domain %q, want %q (%s)", tc.name, r.Domain, tc.domain, r.Problem)
		}
		if tc.problem == "" && tc.domain != "" && r.Problem != "" {
			t.Errorf("%s: unexpected problem %q", tc.name, r.Problem)
		}
		if tc.problem != "" && !strings.Contains(r.Problem, tc.problem) {
			t.Errorf("%s: problem %q, want %q", tc.name, r.Problem, tc.problem)
		}
	}
}

// FuzzParseFrom: the From parser never panics, and whenever it names a
// domain that domain is lower-case, non-empty and there is exactly one From.
func FuzzParseFrom(f *testing.F) {
	for _, s := range []string{
		"From: a@example.test\r\n\r\nx",
		"From: a@example.test\r\nFrom : b@bank.test\r\n\r\n",
		"From: =?utf-8?q?ceo=40bank.test?= <a@example.test>\r\n\r\n",
		"From:\r\n a@example.test,\r\n b@example.test\r\n\r\n",
		"From: \"x\\\"@y\" <a@[1.2.3.4]>\r\n",
		"\r\nFrom: a@example.test\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := parseFrom(body)
		if r.Domain != "" {
			if r.Problem != "" || r.Count != 1 {
				t.Fatalf("domain %q with problem %q count %d", r.Domain, r.Problem, r.Count)
			}
			if r.Domain != strings.ToLower(r.Domain) {
				t.Fatalf("domain %q not lower-case", r.Domain)
			}
		} else if r.Problem == "" {
			t.Fatalf("no domain and no problem for %q", body)
		}
		_ = OrgDomain(r.Domain)
	})
}

// FuzzParseKeyRecord: key records from DNS are attacker-controlled input.
func FuzzParseKeyRecord(f *testing.F) {
	f.Add("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
	f.Add("v=DKIM1; k=rsa; p=")
	f.Add("k=rsa; p=MIGJAoGBALVI635dLK4cJJAH3Lx6upo3X")
	f.Fuzz(func(t *testing.T, s string) {
		pub, err := parseKeyRecord(s)
		if err == nil && pub == nil {
			t.Fatal("nil key without error")
		}
	})
}
