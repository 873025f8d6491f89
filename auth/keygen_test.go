package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeygen(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{"rsa", "ed25519", ""} {
		t.Run("type="+typ, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "k.pem")
			name, value, err := Keygen("Example.TEST", "sel", typ, path)
			if err != nil {
				t.Fatal(err)
			}
			if name != "sel._domainkey.example.test" {
				t.Errorf("name = %q", name)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("mode = %v, want 0600", st.Mode().Perm())
			}
			pub, err := parseKeyRecord(value)
			if err != nil {
				t.Fatalf("record %q does not parse: %v", value, err)
			}
			k, err := loadKey(KeyConfig{Domain: "example.test", Selector: "sel", KeyFile: path})
			if err != nil {
				t.Fatal(err)
			}
			if !samePublicKey(pub, k.signer.Public()) {
				t.Error("record does not match the key file")
			}
			wantAlgo := typ
			if wantAlgo == "" {
				wantAlgo = "rsa"
			}
			if k.algo != wantAlgo || !strings.Contains(value, "k="+wantAlgo) {
				t.Errorf("algo %s, record %q", k.algo, value)
			}
			// Never overwrite a key that may be published.
			if _, _, err := Keygen("example.test", "sel", typ, path); err == nil {
				t.Error("Keygen overwrote an existing key file")
			}
		})
	}
	if _, _, err := Keygen("example.test", "sel", "dsa", filepath.Join(t.TempDir(), "x")); err == nil {
		t.Error("unknown key type accepted")
	}
}
