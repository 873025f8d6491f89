package auth

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const dkimData = "../../shared/testdata/dkim/"

// loadStalwart parses a stalwart vector: "name TXT" lines, a blank line,
// then the message with LF endings, converted to CRLF.
func loadStalwart(t *testing.T, path string) (*fakeDNS, []byte) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("vector not available: %v", err)
	}
	dnsPart, msg, ok := strings.Cut(string(raw), "\n\n")
	if !ok {
		t.Fatalf("%s: no blank line", path)
	}
	f := newFakeDNS()
	for _, line := range strings.Split(dnsPart, "\n") {
		name, txt, ok := strings.Cut(line, " ")
		if ok {
			f.txt[fkey(name)] = append(f.txt[fkey(name)], txt)
		}
	}
	return f, []byte(strings.ReplaceAll(msg, "\n", "\r\n"))
}

// TestDKIMVerifyStalwart: the last signature of each vector passes at unix
// 1667843664, the vectors' own clock (our verifier reads the clock of the
// DNS cache, so it can be pinned); a day after the latest x= the expiry
// error is the only failure.
func TestDKIMVerifyStalwart(t *testing.T) {
	t.Parallel()
	vectorTime := time.Unix(1667843664, 0)
	for _, name := range []string{"001.txt", "002.txt", "003.txt", "004.txt", "005.txt", "006.txt"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fake, msg := loadStalwart(t, filepath.Join(dkimData, "stalwart", name))
			d := newDNSCache(fake, time.Second, time.Minute, time.Second, func() time.Time { return vectorTime })
			vs, err := verifyDKIM(context.Background(), d, msg)
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) == 0 {
				t.Fatal("no signatures found")
			}
			last := vs[len(vs)-1]
			if last.Err != nil {
				t.Errorf("d=%s: %v", last.Domain, last.Err)
			}
			if exp := last.Expiration; !exp.IsZero() {
				later := newDNSCache(fake, time.Second, time.Minute, time.Second, func() time.Time { return exp.Add(24 * time.Hour) })
				vs, err := verifyDKIM(context.Background(), later, msg)
				if err != nil || len(vs) == 0 {
					t.Fatalf("after x=: %v, %d results", err, len(vs))
				}
				if e := vs[len(vs)-1].Err; e == nil || vs[len(vs)-1].Temp || !strings.Contains(e.Error(), "signature has expired") {
					t.Errorf("after x=%v: got %v, want the expiry error", exp, e)
				}
			}
			if name == "001.txt" {
				// RFC 8463 Appendix A: both the Ed25519 and RSA signatures pass.
				for _, v := range vs {
					if v.Err != nil {
						t.Errorf("RFC 8463 example d=%s: %v", v.Domain, v.Err)
					}
				}
			}
		})
	}
}

// TestDKIMVerifyDkimpy checks the RFC 8463 Ed25519 signature of dkimpy's
// rfc6376.signed.msg (simple/simple) with the RFC 8463 A.2 key.
func TestDKIMVerifyDkimpy(t *testing.T) {
	t.Parallel()
	msg, err := os.ReadFile(filepath.Join(dkimData, "dkimpy", "rfc6376.signed.msg"))
	if err != nil {
		t.Skipf("vector not available: %v", err)
	}
	if !bytes.Contains(msg, []byte("\r\n")) {
		msg = bytes.ReplaceAll(msg, []byte("\n"), []byte("\r\n"))
	}
	f := newFakeDNS()
	f.txt["brisbane._domainkey.football.example.com"] = []string{"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}
	d := newDNSCache(f, time.Second, time.Minute, time.Second, time.Now)
	vs, err := verifyDKIM(context.Background(), d, msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 || vs[0].Err != nil {
		t.Fatalf("ed25519 signature: %+v", vs)
	}
	// The second (RSA, s=test) signature has no published key in the data
	// set; it must fail, not pass.
	if len(vs) > 1 && vs[1].Err == nil {
		t.Errorf("RSA signature without a key passed")
	}
}

// TestParseKeyRecord covers good records and dkimpy's malformed ones.
func TestParseKeyRecord(t *testing.T) {
	t.Parallel()
	read := func(n string) string {
		b, err := os.ReadFile(filepath.Join(dkimData, "dkimpy", n))
		if err != nil {
			t.Skipf("vector not available: %v", err)
		}
		return strings.TrimSpace(string(b))
	}
	tests := []struct {
		file   string
		record string
		ok     bool
	}{
		{file: "test.txt", ok: true},
		{file: "ed25519test.dns", ok: true},
		{file: "badk.txt", ok: false},       // k=ed25519-sha256 is not a key type
		{file: "badversion.txt", ok: false}, // "v=DKIM1:" is malformed
		{file: "test_bad.txt", ok: false},   // truncated key
		{record: "v=DKIM1; k=rsa; p=", ok: false},
		{record: "v=DKIM1; k=ed25519; p=AAAA", ok: false},
		{record: "v=DKIM1; k=rsa", ok: false},
	}
	for _, tc := range tests {
		rec := tc.record
		if tc.file != "" {
			rec = read(tc.file)
		}
		_, err := parseKeyRecord(rec)
		if (err == nil) != tc.ok {
			t.Errorf("%s%s: err = %v, want ok=%v", tc.file, tc.record, err, tc.ok)
		}
	}
}
