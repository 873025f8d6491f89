// Package testpeer finds the real programs that integration tests drive
// (swaks, smtp-sink, chromium, redis-server...). Outside test.sh a missing
// program skips the test; under test.sh, which installs every peer by
// package name and exports SLUICE_TEST_REQUIRE_PEERS=1, it fails the test,
// so that a machine missing a peer can never pass the suite by skipping.
package testpeer

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Required reports whether missing peers fail tests instead of skipping them.
func Required() bool { return os.Getenv("SLUICE_TEST_REQUIRE_PEERS") == "1" }

// Need returns the path of the first of names found on PATH or in the
// sbin directories (postfix installs smtp-sink under /usr/sbin).
func Need(t testing.TB, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, d := range []string{"/usr/sbin", "/usr/bin", "/sbin"} {
			p := filepath.Join(d, name)
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	Missing(t, names[0]+" not installed (./test.sh installs it)")
	return ""
}

// Missing skips the test, or fails it under test.sh.
func Missing(t testing.TB, why string) {
	t.Helper()
	if Required() {
		t.Fatalf("prerequisite missing: %s", why)
	}
	t.Skip(why)
}
