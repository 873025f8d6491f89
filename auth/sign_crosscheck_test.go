package auth

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// dkimpyPython finds a python3 that can import dkimpy (Debian's
// python3-dkim), or "".
func dkimpyPython() string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import dkim").Run() == nil {
			return p
		}
	}
	return ""
}

// TestSignCrossCheckDkimpy verifies our RSA and Ed25519 signatures with an
// independent implementation, dkimpy.
func TestSignCrossCheckDkimpy(t *testing.T) {
	t.Parallel()
	py := dkimpyPython()
	if py == "" {
		t.Skip("dkimpy not installed (apt-get install python3-dkim)")
	}
	fake := newFakeDNS()
	keys := []KeyConfig{
		keyFixture(t, fake, "example.test", "r1", "rsa", false),
		keyFixture(t, fake, "example.test", "e1", "ed25519", false),
	}
	c, err := New(Options{Mode: ModeOff, Keys: keys, Resolver: fake, OutboundIPs: testIPs})
	if err != nil {
		t.Fatal(err)
	}
	body, v, err := c.Check(context.Background(), Input{Body: []byte(testMsg)})
	if err != nil || len(v.SignedBy) != 2 {
		t.Fatalf("sign: %v %v", err, v.SignedBy)
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
	if err != nil {
		t.Fatalf("dkimpy rejects our signatures: %v\n%s", err, out)
	}
	t.Logf("dkimpy: %s", out)
	// Control: a changed body must fail, or the helper proves nothing.
	tampered := append(append([]byte(nil), body...), "tampered\r\n"...)
	if err := os.WriteFile(msgPath, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(py, "testdata/dkimverify.py", msgPath, dnsPath).CombinedOutput(); err == nil {
		t.Fatalf("dkimpy accepted a tampered message:\n%s", out)
	}
}
