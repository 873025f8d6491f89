package auth

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"sluice/internal/testpeer"
)

func TestEndHeader(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"From: a@b\r\nSubject: s\r\n", "From: a@b\r\nSubject: s\r\n\r\n"},
		{"From: a@b\r\nSubject: s", "From: a@b\r\nSubject: s\r\n\r\n"},
		{"From: a@b\r\n\r\n", "From: a@b\r\n\r\n"},
		{"From: a@b\r\n\r\nbody\r\n", "From: a@b\r\n\r\nbody\r\n"},
		{"From: a@b\r\n\r\nbody", "From: a@b\r\n\r\nbody"},
		{"\r\nbody\r\n", "\r\nbody\r\n"},
		{"From: a@b\n\nbody\n", "From: a@b\n\nbody\n"},
		{"From: a@b\r\n folded\r\n", "From: a@b\r\n folded\r\n\r\n"},
		{"", "\r\n"},
	}
	for _, tc := range tests {
		for name, r := range map[string]io.Reader{
			"whole":   strings.NewReader(tc.in),
			"onebyte": iotest.OneByteReader(strings.NewReader(tc.in)),
			"dataerr": iotest.DataErrReader(strings.NewReader(tc.in)),
		} {
			got, err := io.ReadAll(endHeader(r))
			if err != nil || string(got) != tc.want {
				t.Errorf("%s %q: got %q, %v; want %q", name, tc.in, got, err, tc.want)
			}
		}
	}
}

// headersOnly is a message with no empty line and no body (RFC 5322 §3.5
// makes the body optional).
const headersOnly = "From: App <app@example.test>\r\n" +
	"To: user@dest.test\r\n" +
	"Subject: ping\r\n" +
	"Date: Wed, 25 Nov 2026 12:00:00 +0000\r\n" +
	"Message-ID: <ho@example.test>\r\n"

// TestSignHeadersOnly (issue 9 item 5): a headers-only message from a
// DKIM-signed domain is signed, not deferred with 451 4.3.0, the stored
// message is unchanged, the signature verifies with our verifier and with
// dkimpy, and enforce mode accepts it.
func TestSignHeadersOnly(t *testing.T) {
	t.Parallel()
	fake := newFakeDNS()
	fake.txt["example.test"] = []string{"v=spf1 ip4:198.51.100.1 -all"} // SPF fails: only DKIM can pass
	fake.txt["_dmarc.example.test"] = []string{"v=DMARC1; p=reject"}
	keys := []KeyConfig{
		keyFixture(t, fake, "example.test", "r1", "rsa", false),
		keyFixture(t, fake, "example.test", "e1", "ed25519", false),
	}
	c, err := New(testOptions(func(o *Options) { o.Mode = ModeEnforce; o.Keys = keys; o.Resolver = fake; o.OutboundIPs = testIPs }))
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{headersOnly, strings.TrimSuffix(headersOnly, "\r\n")} {
		sigs, v, err := c.Check(context.Background(), inputOf(Input{MailFrom: "bounce@example.test"}, []byte(msg)))
		body := append(sigs, msg...)
		if err != nil {
			t.Fatalf("enforce mode refused a headers-only message: %v (%+v)", err, v)
		}
		if len(v.SignedBy) != 2 || v.DMARC != "pass" {
			t.Fatalf("verdict %+v", v)
		}
		if !strings.HasSuffix(string(body), msg) || !strings.HasPrefix(string(body), "DKIM-Signature:") {
			t.Fatalf("stored message changed:\n%q", body)
		}
		// RFC 6376 §3.4.4: the relaxed canonical form of an empty body is
		// empty, so bh= is the SHA-256 of nothing.
		if !strings.Contains(strings.Join(strings.Fields(string(body)), ""), "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=") {
			t.Errorf("bh= is not the hash of an empty body:\n%s", body)
		}
		d := newDNSCache(fake, time.Second, time.Minute, time.Second, time.Now)
		vs, err := verifyDKIM(context.Background(), d, body)
		if err != nil || len(vs) != 2 {
			t.Fatalf("verify: %v, %d results", err, len(vs))
		}
		for _, ver := range vs {
			if ver.Err != nil {
				t.Errorf("our verifier: d=%s: %v", ver.Domain, ver.Err)
			}
		}
		if msg == headersOnly {
			// dkimpy reads the message as stored; an unterminated last
			// line is not something SMTP DATA can carry.
			dkimpyVerify(t, fake, body, true)
		}
	}
}

// dkimpyVerify checks every signature of body with dkimpy (Debian's
// python3-dkim) against fake's TXT records.
func dkimpyVerify(t *testing.T, fake *fakeDNS, body []byte, want bool) {
	t.Helper()
	py := dkimpyPython()
	if py == "" {
		testpeer.Missing(t, "dkimpy not installed (apt-get install python3-dkim)")
	}
	dir := t.TempDir()
	msgPath, dnsPath := filepath.Join(dir, "msg.eml"), filepath.Join(dir, "dns.json")
	records := map[string]string{}
	for name, txt := range fake.txt {
		records[name] = txt[0]
	}
	js, _ := json.Marshal(records)
	if err := os.WriteFile(msgPath, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dnsPath, js, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "testdata/dkimverify.py", msgPath, dnsPath).CombinedOutput()
	if (err == nil) != want {
		t.Fatalf("dkimpy: err=%v, want pass=%v\n%s", err, want, out)
	}
}

// FuzzEndHeader: the output is the input plus at most the CRLFs that end
// its header section, and it always has an empty line.
func FuzzEndHeader(f *testing.F) {
	f.Add([]byte(headersOnly))
	f.Add([]byte(testMsg))
	f.Add([]byte("From: a\r\n\r"))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := io.ReadAll(endHeader(iotest.HalfReader(strings.NewReader(string(in)))))
		if err != nil || !strings.HasPrefix(string(out), string(in)) {
			t.Fatalf("%q -> %q, %v", in, out, err)
		}
		added := string(out[len(in):])
		if added != "" && added != "\r\n" && added != "\r\n\r\n" {
			t.Fatalf("%q: added %q", in, added)
		}
		// An empty line: LF or CRLF at the very start or after a LF.
		hasEmpty := func(s string) bool {
			return strings.HasPrefix(s, "\n") || strings.HasPrefix(s, "\r\n") ||
				strings.Contains(s, "\n\n") || strings.Contains(s, "\n\r\n")
		}
		if !hasEmpty(string(out)) {
			t.Fatalf("%q -> %q has no empty line", in, out)
		}
		if added != "" && hasEmpty(string(in)) {
			t.Fatalf("%q already had an empty line, got %q added", in, added)
		}
	})
}
