package auth

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testMsg = "From: App <app@example.test>\r\n" +
	"To: user@dest.test\r\n" +
	"Subject: hello\r\n" +
	"Date: Wed, 25 Nov 2026 12:00:00 +0000\r\n" +
	"Message-ID: <1@example.test>\r\n" +
	"\r\n" +
	"Body line one.\r\n" +
	"Body  line two with  spaces   \r\n"

// keyFixture generates a key with Keygen and publishes its record in fake.
func keyFixture(t testing.TB, fake *fakeDNS, domain, selector, typ string, subdomains bool) KeyConfig {
	t.Helper()
	path := filepath.Join(t.TempDir(), selector+".pem")
	name, value, err := Keygen(domain, selector, typ, path)
	if err != nil {
		t.Fatal(err)
	}
	if fake != nil {
		fake.txt[name] = []string{value}
	}
	return KeyConfig{Domain: domain, Selector: selector, KeyFile: path, Subdomains: subdomains}
}

// TestSignVerifyRoundTrip signs with RSA-2048, Ed25519 and both, then
// verifies with go-msgauth against the published records.
func TestSignVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	fake := newFakeDNS()
	rsaKey := keyFixture(t, fake, "example.test", "r1", "rsa", false)
	edKey := keyFixture(t, fake, "example.test", "e1", "ed25519", false)
	tests := []struct {
		name string
		keys []KeyConfig
		want int
	}{
		{"rsa", []KeyConfig{rsaKey}, 1},
		{"ed25519", []KeyConfig{edKey}, 1},
		{"both", []KeyConfig{rsaKey, edKey}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := New(testOptions(func(o *Options) { o.Mode = ModeOff; o.Keys = tc.keys; o.Resolver = fake; o.OutboundIPs = testIPs }))
			if err != nil {
				t.Fatal(err)
			}
			sigs, v, err := c.Check(context.Background(), inputOf(Input{MailFrom: "bounce@example.test"}, []byte(testMsg)))
			body := append(sigs, testMsg...)
			if err != nil {
				t.Fatal(err)
			}
			if len(v.SignedBy) != tc.want {
				t.Fatalf("signed by %v, want %d signatures", v.SignedBy, tc.want)
			}
			if !strings.HasSuffix(string(body), testMsg) {
				t.Fatal("signing changed the original message")
			}
			head := string(messageHeader(body))
			if !strings.Contains(head, "c=relaxed/relaxed") {
				t.Errorf("not relaxed/relaxed:\n%s", head)
			}
			if !strings.Contains(strings.Join(strings.Fields(head), ""), "h=From:From:To:Cc:Subject:Date:Message-ID:Reply-To:MIME-Version:Content-Type:Content-Transfer-Encoding") {
				t.Errorf("signed header list:\n%s", head)
			}
			d := newDNSCache(fake, time.Second, time.Minute, time.Second, time.Now)
			vs, err := verifyDKIM(context.Background(), d, body)
			if err != nil || len(vs) != tc.want {
				t.Fatalf("verify: %v, %d results", err, len(vs))
			}
			for _, ver := range vs {
				if ver.Err != nil {
					t.Errorf("d=%s: %v", ver.Domain, ver.Err)
				}
			}
			// Over-signing: a second From added after signing breaks it.
			spoofed := []byte(strings.Replace(string(body), "From: App", "From: evil@attacker.test\r\nFrom: App", 1))
			vs, _ = verifyDKIM(context.Background(), d, spoofed)
			for _, ver := range vs {
				if ver.Err == nil {
					t.Errorf("signature survived an added From header")
				}
			}
		})
	}
}

// TestSignPKCS1Key loads dkimpy's PKCS#1 RSA key and round-trips with its
// published record.
func TestSignPKCS1Key(t *testing.T) {
	t.Parallel()
	txt, err := os.ReadFile(filepath.Join(dkimData, "dkimpy", "test.txt"))
	if err != nil {
		t.Skipf("vector not available: %v", err)
	}
	fake := newFakeDNS()
	fake.txt["test._domainkey.example.test"] = []string{strings.TrimSpace(string(txt))}
	c, err := New(testOptions(func(o *Options) {
		o.Mode = ModeOff
		o.Resolver = fake
		o.OutboundIPs = testIPs
		o.Keys = []KeyConfig{{Domain: "example.test", Selector: "test", KeyFile: filepath.Join(dkimData, "dkimpy", "test.private")}}
	}))
	if err != nil {
		t.Fatal(err)
	}
	sigs, _, err := c.Check(context.Background(), inputOf(Input{}, []byte(testMsg)))
	body := append(sigs, testMsg...)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := verifyDKIM(context.Background(), c.dns, body)
	if err != nil || len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("verify: %v %+v", err, vs)
	}
}

func TestKeysForSubdomains(t *testing.T) {
	t.Parallel()
	org := keyFixture(t, nil, "example.test", "s1", "ed25519", true)
	exact := keyFixture(t, nil, "other.test", "s1", "ed25519", false)
	c, err := New(testOptions(func(o *Options) {
		o.Mode = ModeOff
		o.Keys = []KeyConfig{org, exact}
		o.OutboundIPs = testIPs
		o.Resolver = newFakeDNS()
	}))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		from string
		want string
	}{
		{"example.test", "example.test"},
		{"news.example.test", "example.test"},
		{"other.test", "other.test"},
		{"sub.other.test", ""}, // Subdomains not set
		{"unrelated.test", ""},
	}
	for _, tc := range tests {
		ks := c.keysFor(tc.from)
		got := ""
		if len(ks) > 0 {
			got = ks[0].Domain
		}
		if got != tc.want {
			t.Errorf("keysFor(%s) = %q, want %q", tc.from, got, tc.want)
		}
	}
}

// TestCheckStreamsMessage: Check reads the message only through Open,
// once per signing key and once to verify signatures already present,
// and not at all when there is nothing to sign or verify: a large
// message is streamed from its spool, never read into memory whole.
func TestCheckStreamsMessage(t *testing.T) {
	t.Parallel()
	fake := newFakeDNS()
	rsaKey := keyFixture(t, fake, "example.test", "r1", "rsa", false)
	edKey := keyFixture(t, fake, "example.test", "e1", "ed25519", false)
	signedBefore := "DKIM-Signature: v=1; a=rsa-sha256; d=other.test; s=x; h=from; bh=AAAA; b=AAAA\r\n" + testMsg
	tests := []struct {
		name  string
		keys  []KeyConfig
		msg   string
		opens int
	}{
		{"nothing to sign or verify", nil, testMsg, 0},
		{"one key", []KeyConfig{rsaKey}, testMsg, 1},
		{"two keys", []KeyConfig{rsaKey, edKey}, testMsg, 2},
		{"a signature to verify", nil, signedBefore, 1},
		{"both", []KeyConfig{edKey}, signedBefore, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := New(testOptions(func(o *Options) { o.Mode = ModeWarn; o.Keys = tc.keys; o.Resolver = fake; o.OutboundIPs = testIPs }))
			if err != nil {
				t.Fatal(err)
			}
			var opens int
			in := inputOf(Input{MailFrom: "bounce@example.test"}, []byte(tc.msg))
			open := in.Open
			in.Open = func() (io.ReadCloser, error) { opens++; return open() }
			sigs, v, err := c.Check(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if opens != tc.opens {
				t.Errorf("message opened %d times, want %d", opens, tc.opens)
			}
			if len(v.SignedBy) != len(tc.keys) || strings.Count(string(sigs), "DKIM-Signature:") != len(tc.keys) {
				t.Errorf("signed by %v, fields %q", v.SignedBy, sigs)
			}
		})
	}
}

// TestSignFrom: SignFrom signs a message sluice writes itself (a
// TLS-RPT report, issue 14 item 4) with the keys for its From domain,
// the extra fields included in h=, and the signature verifies; a domain
// without a key gets none.
func TestSignFrom(t *testing.T) {
	t.Parallel()
	fake := newFakeDNS()
	key := keyFixture(t, fake, "example.test", "s1", "ed25519", false)
	c, err := New(testOptions(func(o *Options) {
		o.Mode = ModeOff
		o.Keys = []KeyConfig{key}
		o.Resolver = fake
		o.OutboundIPs = testIPs
	}))
	if err != nil {
		t.Fatal(err)
	}
	msg := "From: <tlsrpt@example.test>\r\nTo: <r@dest.test>\r\nSubject: Report Domain: dest.test Submitter: example.test Report-ID: <1@example.test>\r\n" +
		"TLS-Report-Domain: dest.test\r\nTLS-Report-Submitter: example.test\r\n\r\nbody\r\n"
	sigs, err := c.SignFrom("example.test", []byte(msg), "TLS-Report-Domain", "TLS-Report-Submitter")
	if err != nil || len(sigs) == 0 {
		t.Fatalf("SignFrom: %q, %v", sigs, err)
	}
	if h := strings.Join(strings.Fields(string(sigs)), ""); !strings.Contains(h, ":TLS-Report-Domain:TLS-Report-Submitter;") {
		t.Errorf("signed header list lacks the report fields:\n%s", sigs)
	}
	d := newDNSCache(fake, time.Second, time.Minute, time.Second, time.Now)
	vs, err := verifyDKIM(context.Background(), d, append(sigs, msg...))
	if err != nil || len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("verify: %v %+v", err, vs)
	}
	if sigs, err := c.SignFrom("other.test", []byte(msg)); sigs != nil || err != nil {
		t.Errorf("a domain without a key: %q, %v", sigs, err)
	}
}
