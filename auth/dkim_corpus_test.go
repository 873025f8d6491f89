package auth

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"sluice/internal/testpeer"
)

// The DKIM corpus (issue 9 item 18) in testdata/dkim-corpus: one message
// per case where our verifier once disagreed with Mail::DKIM, plus the
// controls around each. Mail::DKIM's own t/corpus is not among the shared
// test data, so these messages are made by TestDKIMCorpusGenerate (with
// go-msgauth's signer) after the cases of that corpus (good_qp_*,
// good_rfc4871_4, no_body_*, badkey_10); TestDKIMCorpusMailDKIM checks every
// verdict below against Mail::DKIM itself.
const dkimCorpusDir = "testdata/dkim-corpus"

// dkimCorpus is the expected verdict per file. mailDKIM is Mail::DKIM's
// result (pass, fail: the signature does not match, invalid: the
// signature or key forbids it); ours passes exactly when it says pass.
var dkimCorpus = []struct {
	file     string
	mailDKIM string
	why      string
}{
	// RFC 6376 §3.5: i= is dkim-quoted-printable (§2.11).
	{"qp_at.eml", "pass", "i=joe=40corpus.test: '@' encoded"},
	{"qp_sub.eml", "pass", "i==40news.corpus.test: empty local part, '@' encoded, subdomain"},
	{"qp_local.eml", "pass", "i=joe=2Bnews@corpus.test: an encoded safe character"},
	// Domains compare case-insensitively (RFC 6376 §3.5, RFC 4343).
	{"case_i.eml", "pass", "i=joe@CORPUS.TEST, d=corpus.test"},
	{"case_d.eml", "pass", "d=Corpus.Test, i=joe@corpus.test"},
	// A headers-only message has an empty body (RFC 6376 §3.4.3/§3.4.4).
	{"headers_only_simple.eml", "pass", "no empty line, no body, c=simple/simple"},
	{"headers_only_relaxed.eml", "pass", "no empty line, no body, c=relaxed/relaxed"},
	{"empty_body_simple.eml", "pass", "control: empty line, no body"},
	// Key flag t=s: i= must not be a subdomain of d= (RFC 6376 §3.6.1).
	{"strict_sub.eml", "invalid", "key t=s, i=joe@news.corpus.test"},
	{"strict_list_sub.eml", "invalid", "key t=y:s, i=@news.corpus.test"},
	{"strict_case.eml", "pass", "key t=s, i=joe@CORPUS.test: same domain"},
	{"strict_same.eml", "pass", "control: key t=s, i=joe@corpus.test"},
	{"strict_no_i.eml", "pass", "control: key t=s, no i="},
	{"sub_i.eml", "pass", "control: i= in a subdomain, key without t=s"},
	{"foreign_i.eml", "invalid", "control: i=joe@other.test is not under d="},
	{"bad_qp_i.eml", "pass", "control: i=joe=4@corpus.test, a stray '=' is kept as it is"},
	{"tampered_body.eml", "fail", "control: body changed after signing"},
}

// loadCorpusZone reads "name TXT-value" lines.
func loadCorpusZone(t *testing.T) *fakeDNS {
	t.Helper()
	f, err := os.Open(filepath.Join(dkimCorpusDir, "dns.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fake := newFakeDNS()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, txt, ok := strings.Cut(sc.Text(), " ")
		if ok && !strings.HasPrefix(name, "#") {
			fake.txt[fkey(name)] = append(fake.txt[fkey(name)], txt)
		}
	}
	return fake
}

// TestDKIMCorpus verifies every corpus message and compares the verdict
// with the table.
func TestDKIMCorpus(t *testing.T) {
	t.Parallel()
	fake := loadCorpusZone(t)
	d := newDNSCache(fake, time.Second, time.Minute, time.Second, time.Now)
	for _, tc := range dkimCorpus {
		t.Run(tc.file, func(t *testing.T) {
			msg, err := os.ReadFile(filepath.Join(dkimCorpusDir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			vs, err := verifyDKIM(context.Background(), d, msg)
			got := "no result"
			switch {
			case err != nil:
				got = "error: " + err.Error()
			case len(vs) == 1 && vs[0].Err == nil:
				got = "pass"
			case len(vs) == 1:
				got = "fail: " + vs[0].Err.Error()
			}
			if want := tc.mailDKIM == "pass"; (got == "pass") != want {
				t.Errorf("%s (%s): got %s, want %s as Mail::DKIM", tc.file, tc.why, got, tc.mailDKIM)
			}
		})
	}
}

// TestDKIMCorpusMailDKIM checks the table against Mail::DKIM (Debian's
// libmail-dkim-perl), so that the expected verdicts are not ours alone.
func TestDKIMCorpusMailDKIM(t *testing.T) {
	t.Parallel()
	if exec.Command("perl", "-MMail::DKIM::Verifier", "-MNet::DNS", "-e1").Run() != nil {
		testpeer.Missing(t, "Mail::DKIM not installed (apt-get install libmail-dkim-perl)")
	}
	args := []string{"testdata/maildkim-verify.pl", filepath.Join(dkimCorpusDir, "dns.txt")}
	for _, tc := range dkimCorpus {
		args = append(args, filepath.Join(dkimCorpusDir, tc.file))
	}
	out, err := exec.Command("perl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("Mail::DKIM: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			got[f[0]] = line
		}
	}
	for _, tc := range dkimCorpus {
		if line := got[tc.file]; !strings.HasPrefix(line, tc.file+" "+tc.mailDKIM+" ") && line != tc.file+" "+tc.mailDKIM {
			t.Errorf("%s (%s): Mail::DKIM says %q, the table %s", tc.file, tc.why, line, tc.mailDKIM)
		}
	}
}

// TestDKIMCorpusGenerate rewrites testdata/dkim-corpus with fresh keys:
// SLUICE_REGEN_DKIM_CORPUS=1 go test -run TestDKIMCorpusGenerate ./auth/
func TestDKIMCorpusGenerate(t *testing.T) {
	if os.Getenv("SLUICE_REGEN_DKIM_CORPUS") != "1" {
		t.Skip("set SLUICE_REGEN_DKIM_CORPUS=1 to regenerate the corpus")
	}
	keys := map[string]*rsa.PrivateKey{}
	zone := map[string]string{}
	for sel, flags := range map[string]string{"r1": "", "strict": "; t=s", "stricty": "; t=y:s"} {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := publicKeyTXT(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		keys[sel] = k
		zone[sel+"._domainkey.corpus.test"] = rec + flags
	}
	type spec struct {
		d, i, sel string
		canon     dkim.Canonicalization
		body      string // "" = headers only
		tamper    bool
	}
	const normal = "\r\nHello.\r\n  Spaces  here  \r\n\r\n"
	specs := map[string]spec{
		"qp_at.eml":                {"corpus.test", "joe=40corpus.test", "r1", dkim.CanonicalizationRelaxed, normal, false},
		"qp_sub.eml":               {"corpus.test", "=40news.corpus.test", "r1", dkim.CanonicalizationRelaxed, normal, false},
		"qp_local.eml":             {"corpus.test", "joe=2Bnews@corpus.test", "r1", dkim.CanonicalizationSimple, normal, false},
		"case_i.eml":               {"corpus.test", "joe@CORPUS.TEST", "r1", dkim.CanonicalizationRelaxed, normal, false},
		"case_d.eml":               {"Corpus.Test", "joe@corpus.test", "r1", dkim.CanonicalizationRelaxed, normal, false},
		"headers_only_simple.eml":  {"corpus.test", "", "r1", dkim.CanonicalizationSimple, "", false},
		"headers_only_relaxed.eml": {"corpus.test", "", "r1", dkim.CanonicalizationRelaxed, "", false},
		"empty_body_simple.eml":    {"corpus.test", "", "r1", dkim.CanonicalizationSimple, "\r\n", false},
		"strict_sub.eml":           {"corpus.test", "joe@news.corpus.test", "strict", dkim.CanonicalizationRelaxed, normal, false},
		"strict_list_sub.eml":      {"corpus.test", "@news.corpus.test", "stricty", dkim.CanonicalizationRelaxed, normal, false},
		"strict_case.eml":          {"corpus.test", "joe@CORPUS.test", "strict", dkim.CanonicalizationRelaxed, normal, false},
		"strict_same.eml":          {"corpus.test", "joe@corpus.test", "strict", dkim.CanonicalizationRelaxed, normal, false},
		"strict_no_i.eml":          {"corpus.test", "", "strict", dkim.CanonicalizationRelaxed, normal, false},
		"sub_i.eml":                {"corpus.test", "joe@news.corpus.test", "r1", dkim.CanonicalizationRelaxed, normal, false},
		"foreign_i.eml":            {"corpus.test", "joe@other.test", "r1", dkim.CanonicalizationRelaxed, normal, false},
		"bad_qp_i.eml":             {"corpus.test", "joe=4@corpus.test", "r1", dkim.CanonicalizationRelaxed, normal, false},
		"tampered_body.eml":        {"corpus.test", "", "r1", dkim.CanonicalizationRelaxed, normal, true},
	}
	for _, tc := range dkimCorpus {
		if _, ok := specs[tc.file]; !ok {
			t.Fatalf("no spec for %s", tc.file)
		}
	}
	for file, s := range specs {
		msg := fmt.Sprintf("From: Joe <joe@corpus.test>\r\nTo: Sam <sam@dest.test>\r\nSubject: %s\r\n"+
			"Date: Wed, 25 Nov 2026 12:00:00 +0000\r\nMessage-ID: <%s@corpus.test>\r\n%s",
			strings.TrimSuffix(file, ".eml"), strings.TrimSuffix(file, ".eml"), s.body)
		signer, err := dkim.NewSigner(&dkim.SignOptions{
			Domain: s.d, Selector: s.sel, Identifier: s.i, Signer: keys[s.sel],
			HeaderCanonicalization: s.canon, BodyCanonicalization: s.canon,
			HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"},
		})
		if err != nil {
			t.Fatal(err)
		}
		// endHeader: go-msgauth cannot sign a headers-only message alone.
		if _, err := bufio.NewReader(endHeader(strings.NewReader(msg))).WriteTo(signer); err != nil {
			t.Fatal(err)
		}
		if err := signer.Close(); err != nil {
			t.Fatal(err)
		}
		out := signer.Signature() + msg
		if s.tamper {
			out = strings.Replace(out, "Hello.", "Hello!", 1)
		}
		if err := os.WriteFile(filepath.Join(dkimCorpusDir, file), []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	names := make([]string, 0, len(zone))
	for n := range zone {
		names = append(names, n)
	}
	sort.Strings(names)
	var z strings.Builder
	z.WriteString("# name TXT-value; written by TestDKIMCorpusGenerate\n")
	for _, n := range names {
		fmt.Fprintf(&z, "%s %s\n", n, zone[n])
	}
	if err := os.WriteFile(filepath.Join(dkimCorpusDir, "dns.txt"), []byte(z.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDKIMCorpusAlignment: the verdicts feed the DMARC pre-check. In
// enforce mode, with SPF failing and p=reject, a message is accepted
// exactly when its existing signature verifies.
func TestDKIMCorpusAlignment(t *testing.T) {
	t.Parallel()
	fake := loadCorpusZone(t)
	fake.txt["corpus.test"] = []string{"v=spf1 ip4:198.51.100.1 -all"}
	fake.txt["_dmarc.corpus.test"] = []string{"v=DMARC1; p=reject"}
	c, err := New(testOptions(func(o *Options) { o.Mode = ModeEnforce; o.Resolver = fake; o.OutboundIPs = testIPs }))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range dkimCorpus {
		msg, err := os.ReadFile(filepath.Join(dkimCorpusDir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		_, v, err := c.Check(context.Background(), inputOf(Input{MailFrom: "bounce@corpus.test"}, msg))
		if accepted := err == nil; accepted != (tc.mailDKIM == "pass") {
			t.Errorf("%s (%s): enforce mode answered %v (dkim=%s dmarc=%s), want accepted=%v", tc.file, tc.why, err, v.DKIM, v.DMARC, tc.mailDKIM == "pass")
		}
	}
}
