package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sluice/auth"
)

// zoneDNS is a map-backed auth.Resolver; a name it does not hold is
// NXDOMAIN, and fail (when set) answers every lookup with that error.
type zoneDNS struct {
	txt, ip, ptr map[string][]string
	mx           map[string][]*net.MX
	fail         error
}

func (z zoneDNS) answer(m map[string][]string, name string) ([]string, error) {
	if z.fail != nil {
		return nil, z.fail
	}
	v, ok := m[strings.TrimSuffix(strings.ToLower(name), ".")]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return v, nil
}

func (z zoneDNS) LookupTXT(_ context.Context, n string) ([]string, error) { return z.answer(z.txt, n) }
func (z zoneDNS) LookupAddr(_ context.Context, a string) ([]string, error) {
	return z.answer(z.ptr, a)
}
func (z zoneDNS) LookupIPAddr(_ context.Context, n string) ([]net.IPAddr, error) {
	s, err := z.answer(z.ip, n)
	var out []net.IPAddr
	for _, a := range s {
		out = append(out, net.IPAddr{IP: net.ParseIP(a)})
	}
	return out, err
}
func (z zoneDNS) LookupMX(_ context.Context, n string) ([]*net.MX, error) {
	if z.fail != nil {
		return nil, z.fail
	}
	if mx, ok := z.mx[strings.ToLower(n)]; ok {
		return mx, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: n, IsNotFound: true}
}

// TestDoctorExitCodes (issue 9 item 19): `sluice doctor` exits 1 and says
// so first when DNS lookups fail or the domain does not exist, and 0 for a
// healthy domain, in text and --json.
func TestDoctorExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "s1.pem")
	name, record, err := auth.Keygen("good.test", "s1", "ed25519", keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sluice.toml")
	if err := os.WriteFile(cfg, []byte(`[delivery]
outbound_ips = ["192.0.2.7"]

[[auth.dkim]]
domain = "good.test"
selector = "s1"
key_file = "`+keyFile+`"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	healthy := zoneDNS{
		txt: map[string][]string{"good.test": {"v=spf1 ip4:192.0.2.7 -all"}, name: {record}, "_dmarc.good.test": {"v=DMARC1; p=reject"}},
		ip:  map[string][]string{"mta.good.test": {"192.0.2.7"}},
		ptr: map[string][]string{"192.0.2.7": {"mta.good.test."}},
		mx:  map[string][]*net.MX{"good.test": {{Host: "mx.good.test.", Pref: 10}}},
	}
	broken := zoneDNS{fail: &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}}

	tests := []struct {
		name     string
		resolver auth.Resolver
		domain   string
		code     int
		first    string   // first line of the text report
		stderr   string   // the error line
		absent   []string // never in the output
		jsonKeys string   // in the --json output
	}{
		{"healthy", healthy, "good.test", 0, "Domain: good.test", "", []string{"To fix"}, `"dns_failures": []`},
		{"broken resolver", broken, "good.test", 1, "DNS lookups failed: ", "DNS lookup(s) failed",
			[]string{"publish TXT", "add a TXT record", "set its reverse DNS"}, `"dns_failures": [`},
		{"nxdomain", healthy, "nosuch.test", 1, "nosuch.test does not exist in DNS", "nosuch.test does not exist in DNS",
			[]string{"publish TXT", "add a TXT record", "add TXT"}, `"domain_not_found": true`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, asJSON := range []bool{false, true} {
				args := []string{"--config", cfg, tc.domain}
				if asJSON {
					args = append([]string{"--json"}, args...)
				}
				var out, errb bytes.Buffer
				code := exitCode("doctor", doctorCmd{resolver: tc.resolver}.run(args, &out, &errb), &errb)
				if code != tc.code {
					t.Errorf("json=%v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", asJSON, code, tc.code, out.String(), errb.String())
				}
				if !strings.Contains(errb.String(), tc.stderr) {
					t.Errorf("json=%v: stderr %q lacks %q", asJSON, errb.String(), tc.stderr)
				}
				for _, bad := range tc.absent {
					if strings.Contains(out.String(), bad) {
						t.Errorf("json=%v: output has %q:\n%s", asJSON, bad, out.String())
					}
				}
				if asJSON {
					var v map[string]any
					if err := json.Unmarshal(out.Bytes(), &v); err != nil || !strings.Contains(out.String(), tc.jsonKeys) {
						t.Errorf("--json: %v, lacks %s:\n%s", err, tc.jsonKeys, out.String())
					}
				} else if first, _, _ := strings.Cut(out.String(), "\n"); !strings.HasPrefix(first, tc.first) {
					t.Errorf("first line %q, want %q", first, tc.first)
				}
			}
		})
	}
}

// TestDoctorBinaryNXDOMAIN runs the built binary on a name that cannot
// exist (RFC 6761 §6.4: .invalid is NXDOMAIN everywhere) with the system
// resolver: it must exit 1 and list no records to add, whether this
// machine's resolver answers NXDOMAIN or fails.
func TestDoctorBinaryNXDOMAIN(t *testing.T) {
	bin := buildTool(t, "sluice/cmd/sluice")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sluice.toml")
	if err := os.WriteFile(cfg, []byte("[delivery]\noutbound_ips = [\"192.0.2.7\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"doctor", "--config", cfg, "nosuch.invalid"}, {"doctor", "--json", "--config", cfg, "nosuch.invalid"}} {
		cmd := exec.Command(bin, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("%v: %v, want exit 1\nstdout:\n%s\nstderr:\n%s", args, err, out.String(), errb.String())
		}
		if !strings.Contains(errb.String(), "does not exist in DNS") && !strings.Contains(errb.String(), "DNS lookup(s) failed") {
			t.Errorf("%v: stderr %q", args, errb.String())
		}
		for _, bad := range []string{"publish TXT", "add a TXT record", "add TXT", "dkim keygen"} {
			if strings.Contains(out.String(), bad) {
				t.Errorf("%v: records to add listed for a domain that does not exist (%q):\n%s", args, bad, out.String())
			}
		}
	}
}
