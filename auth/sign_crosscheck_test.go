package auth

import (
	"context"
	"os/exec"
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
	fake := newFakeDNS()
	keys := []KeyConfig{
		keyFixture(t, fake, "example.test", "r1", "rsa", false),
		keyFixture(t, fake, "example.test", "e1", "ed25519", false),
	}
	c, err := New(testOptions(func(o *Options) { o.Mode = ModeOff; o.Keys = keys; o.Resolver = fake; o.OutboundIPs = testIPs }))
	if err != nil {
		t.Fatal(err)
	}
	sigs, v, err := c.Check(context.Background(), inputOf(Input{}, []byte(testMsg)))
	body := append(sigs, testMsg...)
	if err != nil || len(v.SignedBy) != 2 {
		t.Fatalf("sign: %v %v", err, v.SignedBy)
	}
	dkimpyVerify(t, fake, body, true)
	// Control: a changed body must fail, or the helper proves nothing.
	tampered := append(append([]byte(nil), body...), "tampered\r\n"...)
	dkimpyVerify(t, fake, tampered, false)
}
