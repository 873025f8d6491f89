package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The start-up proofs (issue 9, items 7 and 8): a configuration the
// daemon cannot run with makes `serve` exit non-zero at once with the
// reason, `config check` refuses the same file, and a SIGHUP never kills
// a running daemon.

// serveOnce runs `sluice serve --config cfg` and returns its exit code,
// its output and how long it ran. A daemon that is still running after
// limit is killed: that is the hang the test exists to catch.
func serveOnce(t *testing.T, cfg string, limit time.Duration) (int, string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildTool(t, "sluice/cmd/sluice"), "serve", "--config", cfg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return -1, out.String(), took
	case err == nil:
		return 0, out.String(), took
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), took
	}
	t.Fatalf("serve: %v", err)
	return 0, "", 0
}

// TestServeRefusesBadStart: every refusing configuration makes `serve`
// exit 1 quickly, naming the problem; the ones that are about the file
// (not about the machine, like a port in use) fail `config check` too.
func TestServeRefusesBadStart(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	emptyToken := file("empty.token", "\n")
	token := file("admin.token", "s3cret\n")
	junkCert, junkKey := file("junk-cert.pem", "not a certificate\n"), file("junk-key.pem", "not a key\n")
	junkDKIM := file("junk-dkim.pem", "not a key\n")
	plainFile := file("not-a-dir", "x")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	inUse := busy.Addr().String()
	longSock := "unix:" + filepath.Join(dir, strings.Repeat("s", 120)+".sock")

	tests := []struct {
		name    string
		dataDir string // "" = "data"
		listen  string // keys added to [listen]; SMTP_ADDR is replaced by listen.smtp
		tables  string // tables appended to the file
		smtp    string // listen.smtp ("" = a free port)
		// configErr: `config check` must refuse the file too; false
		// for the machine's state (a port already taken).
		configErr bool
		want      string
	}{
		{name: "admin on all addresses without a token", listen: "admin = \"0.0.0.0:0\"\n", configErr: true, want: "needs listen.admin_token_file"},
		{name: "admin token file empty", listen: fmt.Sprintf("admin = \"127.0.0.1:0\"\nadmin_token_file = %q\n", emptyToken), configErr: true, want: "is empty"},
		{name: "admin socket path too long", listen: fmt.Sprintf("admin = %q\n", longSock), configErr: true, want: "a unix socket path holds at most"},
		{name: "submission without TLS", listen: "submission = \"127.0.0.1:0\"\n", configErr: true, want: "listen.submission: needs [tls]"},
		{name: "bad TLS files", tables: fmt.Sprintf("[tls]\ncert_file = %q\nkey_file = %q\n", junkCert, junkKey), configErr: true, want: "tls: cert_file"},
		{name: "bad DKIM key", tables: fmt.Sprintf("[[auth.dkim]]\ndomain = \"src.test\"\nselector = \"s1\"\nkey_file = %q\n", junkDKIM), configErr: true, want: "junk-dkim.pem"},
		{name: "data_dir under a file", dataDir: filepath.Join(plainFile, "data"), configErr: true, want: "not a directory"},
		{name: "http on the smtp port", listen: "http = \"SMTP_ADDR\"\n", configErr: true, want: "overlaps listen.smtp"},
		{name: "http port in use", listen: fmt.Sprintf("http = %q\n", inUse), want: "listen.http: listen tcp " + inUse},
		{name: "admin port in use", listen: fmt.Sprintf("admin = %q\nadmin_token_file = %q\n", inUse, token), want: "listen.admin: listen tcp " + inUse},
		{name: "smtp port in use", smtp: inUse, want: "listen.smtp: listen tcp " + inUse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			smtp := tc.smtp
			if smtp == "" {
				smtp = freeAddr(t)
			}
			dataDir := tc.dataDir
			if dataDir == "" {
				dataDir = "data"
			}
			listen := strings.ReplaceAll(tc.listen, "SMTP_ADDR", smtp)
			if !strings.Contains(listen, "http =") {
				listen += "http = \"\"\n"
			}
			cfg := filepath.Join(t.TempDir(), "sluice.toml")
			writeConfigRaw(t, cfg, fmt.Sprintf("hostname = \"sluice.test\"\ndata_dir = %q\n\n[listen]\nsmtp = %q\n%s\n[auth]\nmode = \"off\"\n\n%s",
				dataDir, smtp, listen, tc.tables))

			code, out, took := serveOnce(t, cfg, 10*time.Second)
			if code != 1 {
				t.Fatalf("serve: exit %d after %v (want 1 at once)\n%s", code, took, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("serve output lacks %q:\n%s", tc.want, out)
			}
			// Within a second on an idle machine; the bound is loose so
			// that a loaded CI host does not fail it, and a hang still does.
			if took > 5*time.Second {
				t.Errorf("serve took %v to refuse", took)
			}
			t.Logf("serve refused in %v: %s", took.Round(time.Millisecond), strings.TrimSpace(out))

			out, code = cli(t, "config", "check", cfg)
			if tc.configErr && (code != 1 || !strings.Contains(out, tc.want)) {
				t.Errorf("config check: exit %d, want 1 naming %q:\n%s", code, tc.want, out)
			}
			if !tc.configErr && code != 0 {
				t.Errorf("config check: exit %d for a file that is fine (the machine is not):\n%s", code, out)
			}
		})
	}
}

// TestServeSurvivesSIGHUP: a HUP (systemctl reload, an operator's kill
// -HUP) reloads the configuration (issue 12; see proof_reload_test.go)
// and never kills the daemon: SMTP and the admin API keep answering, and
// SIGTERM still stops the daemon cleanly.
func TestServeSurvivesSIGHUP(t *testing.T) {
	dir := t.TempDir()
	smtp := freeAddr(t)
	cfg := writeConfig(t, dir, smtp, "")
	p := startRelay(t, cfg, smtp)
	// One HUP at a time: signals of one kind that arrive before the
	// first is handled coalesce (signal(7)), so two sent back to back
	// may be one reload.
	for n := 1; n <= 2; n++ {
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, fmt.Sprintf("reload %d in the log", n), func() bool {
			return strings.Count(relayLog(cfg), "config reloaded") == n
		})
	}
	select {
	case <-p.done:
		t.Fatalf("the daemon died of SIGHUP:\n%s", relayLog(cfg))
	default:
	}
	rc, code, text := dialSMTP(t, smtp, "")
	if code != 220 {
		t.Fatalf("greeting after HUP: %q", text)
	}
	rc.must("EHLO client.test", 250)
	rc.must("QUIT", 221)
	if out, code := cli(t, "status", "--config", cfg); code != 0 {
		t.Fatalf("status after HUP: exit %d\n%s", code, out)
	}
	p.stop(t)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code after SIGTERM: %d\n%s", code, relayLog(cfg))
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "admin.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("admin socket left behind after a clean stop: %v", err)
	}
}

// TestConfigCheckCLI: `config check` prints its usage for --help (exit
// 2: nothing was checked), names a missing file once, and points at the
// line of a network written with host bits.
func TestConfigCheckCLI(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.toml")
	hostBits := filepath.Join(dir, "hostbits.toml")
	writeConfigRaw(t, hostBits, "hostname = \"sluice.test\"\ndata_dir = \"data\"\n\n[access]\nnetworks = [\"10.0.0.1/8\"]\n")
	tests := []struct {
		args  []string
		code  int
		want  string // the whole output when exact, else a part of it
		exact bool
	}{
		{args: []string{"config", "check", "--help"}, code: 2, want: "usage: sluice config check FILE"},
		{args: []string{"config", "check", "-h"}, code: 2, want: "usage: sluice config check FILE"},
		{args: []string{"config", "check"}, code: 2, want: "usage: sluice config check FILE"},
		{args: []string{"config", "check", "a.toml", "b.toml"}, code: 2, want: "usage: sluice config check FILE"},
		{args: []string{"config", "check", missing}, code: 1, exact: true, want: "sluice config: " + missing + ": cannot read: no such file or directory\n"},
		{args: []string{"config", "check", hostBits}, code: 1, exact: true,
			want: "sluice config: " + hostBits + `:5: access.networks[1]: "10.0.0.1/8" has host bits set: did you mean "10.0.0.0/8" (the network) or "10.0.0.1/32" (the one host)?` + "\n"},
	}
	for _, tc := range tests {
		out, code := cli(t, tc.args...)
		if code != tc.code || (tc.exact && out != tc.want) || !strings.Contains(out, tc.want) {
			t.Errorf("sluice %s: exit %d, want %d\n got: %q\nwant: %q", strings.Join(tc.args, " "), code, tc.code, out, tc.want)
		}
	}
}

// TestServeRefusesLiveAdminSocket: a second daemon (its own data_dir, so
// the queue lock does not stop it) configured with the first one's admin
// socket exits 1 at start-up; the first keeps its socket and answers.
func TestServeRefusesLiveAdminSocket(t *testing.T) {
	shared := filepath.Join(t.TempDir(), "admin.sock")
	dirA, dirB := t.TempDir(), t.TempDir()
	smtpA, smtpB := freeAddr(t), freeAddr(t)
	cfgA := writeConfig(t, dirA, smtpA, "")
	cfgB := writeConfig(t, dirB, smtpB, "")
	for _, c := range []string{cfgA, cfgB} {
		writeConfigRaw(t, c, strings.Replace(readFile(t, c), "[listen]\n", fmt.Sprintf("[listen]\nadmin = %q\n", "unix:"+shared), 1))
	}
	a := startRelay(t, cfgA, smtpA)
	code, out, took := serveOnce(t, cfgB, 10*time.Second)
	if code != 1 || !strings.Contains(out, "in use by another running daemon") {
		t.Fatalf("second daemon: exit %d after %v, want 1 naming the live socket:\n%s", code, took, out)
	}
	if out, code := cli(t, "status", "--config", cfgA); code != 0 {
		t.Fatalf("first daemon after the second was refused: exit %d\n%s", code, out)
	}
	a.stop(t)
	if _, err := os.Lstat(shared); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the first daemon left its socket behind: %v", err)
	}
}
