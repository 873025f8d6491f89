package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sluice/admin"
	"sluice/internal/testpeer"
)

// curlCode runs curl with args and returns the HTTP status code and body.
func curlCode(t *testing.T, args ...string) (string, string) {
	t.Helper()
	bin := testpeer.Need(t, "curl")
	out, err := exec.Command(bin, append([]string{"-s", "-m", "10", "-w", "\n%{http_code}"}, args...)...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	s := string(out)
	i := strings.LastIndex(s, "\n")
	return s[i+1:], s[:i]
}

// TestProofAdminCrossSite (issue 9 item 11) drives the daemon with real
// curl the way a hostile web page drives the operator's browser: a
// cross-origin "simple" POST, a text/plain body, a foreign Origin, a
// rebound Host. None changes anything; the CLI still works through
// --config (which reads the token file).
func TestProofAdminCrossSite(t *testing.T) {
	testpeer.Need(t, "curl")
	dir := t.TempDir()
	smtpAddr, httpAddr, adminAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	tokenFile := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeAdminConfig(t, dir, smtpAddr, httpAddr, routeTo("dest.test", freeAddr(t))) // the next hop is down: mail stays queued
	writeConfigRaw(t, cfg, strings.Replace(readFile(t, cfg), "[listen]\n", fmt.Sprintf("[listen]\nadmin = %q\nadmin_token_file = %q\n", adminAddr, tokenFile), 1))
	startRelay(t, cfg, smtpAddr)
	submit(t, smtpAddr, 1, "user@dest.test")

	var msgs []admin.Message
	cliJSON(t, &msgs, "queue", "list", "--config", cfg)
	if len(msgs) != 1 {
		t.Fatalf("queue list through --config (token file): %+v", msgs)
	}
	id := msgs[0].ID
	del := fmt.Sprintf(`{"ids":[%q]}`, id)
	api := "http://" + adminAddr + "/v1/queue/delete"
	tests := []struct {
		name string
		args []string
		want []string // acceptable codes
	}{
		{"cross-origin simple POST, no token", []string{"-X", "POST", "-H", "Origin: http://evil.example", "-H", "Content-Type: text/plain", "--data", del, api}, []string{"401", "403"}},
		{"form POST, no token", []string{"-X", "POST", "--data", "ids=" + id, api}, []string{"401", "403"}},
		{"loopback without a token", []string{"-X", "POST", "-H", "Content-Type: application/json", "--data", del, api}, []string{"401"}},
		{"text/plain body with the token", []string{"-X", "POST", "-H", "Authorization: Bearer s3cret-token", "-H", "Content-Type: text/plain", "--data", del, api}, []string{"415"}},
		{"foreign Origin with the token", []string{"-X", "POST", "-H", "Authorization: Bearer s3cret-token", "-H", "Origin: http://evil.example", "-H", "Content-Type: application/json", "--data", del, api}, []string{"403"}},
		{"rebound Host on the HTTP listener", []string{"-H", "Host: rebind.evil.example:" + strings.Split(httpAddr, ":")[1], "http://" + httpAddr + "/v1/dashboard"}, []string{"421", "403"}},
		{"rebound Host on the dashboard page", []string{"-H", "Host: rebind.evil.example", "http://" + httpAddr + "/"}, []string{"421", "403"}},
		{"the HTTP listener's own address", []string{"http://" + httpAddr + "/readyz"}, []string{"200"}},
		{"localhost on a loopback bind", []string{"-H", "Host: localhost:" + strings.Split(httpAddr, ":")[1], "http://" + httpAddr + "/v1/dashboard"}, []string{"200"}},
	}
	for _, tc := range tests {
		code, body := curlCode(t, tc.args...)
		ok := false
		for _, w := range tc.want {
			ok = ok || code == w
		}
		if !ok {
			t.Errorf("%s: HTTP %s %s, want %v", tc.name, code, strings.TrimSpace(body), tc.want)
		}
	}
	var m admin.Message
	cliJSON(t, &m, "queue", "show", id, "--config", cfg)
	if m.Recipients[0].State != "queued" {
		t.Fatalf("after the refused requests the recipient is %q, want queued", m.Recipients[0].State)
	}
	// The unauthenticated dashboard data: counts and domains, no address.
	code, body := curlCode(t, "http://"+httpAddr+"/v1/dashboard")
	if code != "200" || strings.Contains(body, "user@") || strings.Contains(body, "app@") || !strings.Contains(body, "dest.test") {
		t.Errorf("public dashboard: HTTP %s\n%s", code, body)
	}
	// The operator's own request, with the token, works.
	if code, body := curlCode(t, "-X", "POST", "-H", "Authorization: Bearer s3cret-token", "-H", "Content-Type: application/json", "--data", del, api); code != "200" {
		t.Fatalf("the operator's delete: HTTP %s %s", code, body)
	}
	if out, code := cli(t, "status", "--config", cfg); code != 0 {
		t.Fatalf("status through --config: exit %d\n%s", code, out)
	}
	if out, code := cli(t, "status", "--admin", adminAddr); code != 1 || !strings.Contains(out, "--token-file") {
		t.Fatalf("status without the token: exit %d, want 1 saying how to give it\n%s", code, out)
	}
	if out, code := cli(t, "status", "--admin", adminAddr, "--token-file", tokenFile); code != 0 {
		t.Fatalf("status with --token-file: exit %d\n%s", code, out)
	}
}
