package main

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sluice/admin"
	"sluice/internal/fakemx"
)

// sectionsConfig is the config of TestProofReloadSections; v picks what
// varies between reloads.
type sectionsConfig struct {
	smtp, http, sink  string
	maxSize, destConc int
	selector, keyFile string
	cert, key         string
	networks          string
	level             string
	maxRecipients     string // raw TOML value, to write an invalid one
}

func (c sectionsConfig) String() string {
	return fmt.Sprintf(`hostname = "sluice.test"
data_dir = "data"
shutdown_grace = "5s"

[log]
level = %q

[listen]
smtp = %q
http = %q

[tls]
cert_file = %q
key_file = %q

[access]
networks = [%s]

[limits]
max_message_size = "%d"
max_recipients = %s

[policy]
retry_base = "1s"
retry_max = "2s"

[[policy.destination]]
match = "dest.test"
max_concurrency = %d

[auth]
mode = "off"

[[auth.dkim]]
domain = "src.test"
selector = %q
key_file = %q

[[delivery.route]]
domain = "dest.test"
host = %q
tls = "none"
`, c.level, c.smtp, c.http, c.cert, c.key, c.networks, c.maxSize, c.maxRecipients, c.destConc, c.selector, c.keyFile, c.sink)
}

// TestProofReloadSections reloads, through the binary, each reloadable
// section with an effect a client or an operator can observe, the
// invalid-file case, and runtime limits across reloads (issue 12 item 1):
//   - [limits]: a new session sees the new SIZE; a session opened before
//     keeps the old one;
//   - [tls]: the certificate files are replaced: a client after the
//     reload sees the renewed certificate;
//   - [auth]: DKIM key rotation (new selector and key file): the next
//     message is signed with the new key;
//   - [[policy.destination]]: the new limit is in force, unless `limits
//     set` set one, which wins until `limits reset`;
//   - [log] level;
//   - an invalid file: `sluice reload` exits 1 naming the file, the line
//     and the key; nothing changes; the failure is counted;
//   - [access]: loopback removed from the networks: a new session may no
//     longer relay.
func TestProofReloadSections(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	sink := startFakeMX(t, fakemx.Options{KeepBodies: true})
	dir := t.TempDir()
	bin := buildTool(t, "sluice/cmd/sluice")
	keys := map[string]string{}
	for _, sel := range []string{"s1", "s2"} {
		keys[sel] = filepath.Join(dir, sel+".pem")
		if out, err := runCmd(bin, "dkim", "keygen", "--domain", "src.test", "--selector", sel, "--type", "ed25519", "--out", keys[sel]); err != nil {
			t.Fatalf("keygen: %v\n%s", err, out)
		}
	}
	certFile, keyFile := selfSignedCert(t, dir)
	c := sectionsConfig{smtp: freeAddr(t), http: freeAddr(t), sink: sink.Addr(), maxSize: 100000, destConc: 5,
		selector: "s1", keyFile: keys["s1"], cert: certFile, key: keyFile, networks: `"127.0.0.0/8"`, level: "info", maxRecipients: "100"}
	cfgPath := filepath.Join(dir, "sluice.toml")
	writeConfigRaw(t, cfgPath, c.String())
	r := startRelay(t, cfgPath, c.smtp)
	reload := func(want ...string) string {
		t.Helper()
		out, code := cli(t, "reload", "--config", cfgPath)
		if code != 0 {
			t.Fatalf("reload: exit %d\n%s", code, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("reload output lacks %q:\n%s", w, out)
			}
		}
		return out
	}
	send := func(id string) {
		t.Helper()
		rc, _, _ := dialSMTP(t, c.smtp, "")
		rc.must("EHLO client.test", 250)
		rc.must("MAIL FROM:<app@src.test>", 250)
		rc.must("RCPT TO:<u@dest.test>", 250)
		rc.must("DATA", 354)
		rc.must("From: <app@src.test>\r\nMessage-ID: <"+id+"@src.test>\r\nSubject: x\r\n\r\nhello\r\n.", 250)
		rc.must("QUIT", 221)
	}
	signedWith := func(id string) string {
		t.Helper()
		var sel string
		eventually(t, 10*time.Second, id+" at the sink", func() bool {
			for _, b := range sink.Received() {
				if bytes.Contains(b, []byte("<"+id+"@src.test>")) {
					if m := regexp.MustCompile(`(?is)DKIM-Signature:.*?[;\s]s=([a-z0-9]+)`).FindSubmatch(b); m != nil {
						sel = string(m[1])
					}
					return true
				}
			}
			return false
		})
		return sel
	}

	// Before: SIZE, certificate, selector as started.
	old, _, _ := dialSMTP(t, c.smtp, "")
	if ehlo := old.must("EHLO client.test", 250); !strings.Contains(ehlo, "SIZE 100000") {
		t.Fatalf("EHLO: %q", ehlo)
	}
	if leaf := startTLSLeaf(t, c.smtp); !bytes.Equal(leaf, pemBlock(t, certFile)) {
		t.Fatal("the first certificate is not served")
	}
	send("before")
	if sel := signedWith("before"); sel != "s1" {
		t.Fatalf("signed with %q before the reload, want s1", sel)
	}
	if out, code := cli(t, "limits", "set", "dest.test", "--max-concurrency", "2", "--config", cfgPath); code != 0 {
		t.Fatalf("limits set: %d\n%s", code, out)
	}

	// Reload: limits, certificate (same paths, new contents), DKIM key
	// rotation, destination override, log level.
	renewed := t.TempDir()
	newCert, newKey := selfSignedCert(t, renewed)
	copyFile(t, newCert, certFile)
	copyFile(t, newKey, keyFile)
	c.maxSize, c.selector, c.keyFile, c.destConc, c.level = 200000, "s2", keys["s2"], 7, "debug"
	writeConfigRaw(t, cfgPath, c.String())
	reload("limits.max_message_size", "auth.dkim[1].selector", "auth.dkim[1].key_file", "policy.destination[1].max_concurrency",
		"log.level", "tls.cert_file", "tls.key_file")

	if ehlo := old.must("EHLO client.test", 250); !strings.Contains(ehlo, "SIZE 100000") {
		t.Errorf("the session opened before the reload: %q, want the old SIZE", ehlo)
	}
	old.must("QUIT", 221)
	rc, _, _ := dialSMTP(t, c.smtp, "")
	if ehlo := rc.must("EHLO client.test", 250); !strings.Contains(ehlo, "SIZE 200000") {
		t.Errorf("a session after the reload: %q, want SIZE 200000", ehlo)
	}
	rc.must("QUIT", 221)
	if leaf := startTLSLeaf(t, c.smtp); !bytes.Equal(leaf, pemBlock(t, certFile)) {
		t.Error("a client after the reload does not see the renewed certificate")
	}
	send("after")
	if sel := signedWith("after"); sel != "s2" {
		t.Errorf("signed with %q after the key rotation, want s2", sel)
	}
	var d admin.DomainDetail
	cliJSON(t, &d, "domains", "show", "dest.test", "--config", cfgPath)
	if d.Destination.MaxConcurrency != 2 {
		t.Errorf("max concurrency %d after the reload, want the runtime limit 2 (it wins until limits reset)", d.Destination.MaxConcurrency)
	}
	if out, code := cli(t, "limits", "reset", "dest.test", "--config", cfgPath); code != 0 {
		t.Fatalf("limits reset: %d\n%s", code, out)
	}
	cliJSON(t, &d, "domains", "show", "dest.test", "--config", cfgPath)
	if d.Destination.MaxConcurrency != 7 {
		t.Errorf("max concurrency %d after limits reset, want the reloaded override 7", d.Destination.MaxConcurrency)
	}
	if !strings.Contains(relayLog(cfgPath), "level=DEBUG") {
		t.Error("no debug line after log.level = debug")
	}

	// An invalid file changes nothing.
	var before admin.Status
	cliJSON(t, &before, "status", "--config", cfgPath)
	bad := c
	bad.maxSize, bad.maxRecipients = 300000, "0"
	writeConfigRaw(t, cfgPath, bad.String())
	line := 0
	for i, l := range strings.Split(bad.String(), "\n") {
		if strings.HasPrefix(l, "max_recipients") {
			line = i + 1
		}
	}
	out, code := cli(t, "reload", "--admin", "unix:"+filepath.Join(dir, "data", "admin.sock"))
	if want := fmt.Sprintf("%s:%d: limits.max_recipients", cfgPath, line); code != 1 || !strings.Contains(out, want) {
		t.Errorf("invalid reload: exit %d, want 1 and %q:\n%s", code, want, out)
	}
	var after admin.Status
	cliJSON(t, &after, "status", "--admin", "unix:"+filepath.Join(dir, "data", "admin.sock"))
	if after.Config == nil || before.Config == nil || after.Config.Hash != before.Config.Hash || after.Config.LastReload == nil || after.Config.LastReload.OK {
		t.Errorf("status after a refused reload: %+v, before %+v", after.Config, before.Config)
	}
	rc, _, _ = dialSMTP(t, c.smtp, "")
	if ehlo := rc.must("EHLO client.test", 250); !strings.Contains(ehlo, "SIZE 200000") {
		t.Errorf("after a refused reload: %q, want the configuration in force (SIZE 200000)", ehlo)
	}
	rc.must("QUIT", 221)
	metrics := httpGet(t, "http://"+c.http+"/metrics")
	for _, want := range []string{`sluice_config_reloads_total{result="success"} 1`, `sluice_config_reloads_total{result="failure"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// [access]: loopback may no longer relay.
	c.networks = `"192.0.2.0/24"`
	writeConfigRaw(t, cfgPath, c.String())
	reload("access.networks")
	rc, _, _ = dialSMTP(t, c.smtp, "")
	rc.must("EHLO client.test", 250)
	rc.must("MAIL FROM:<app@src.test>", 530)
	r.stop(t)
}

func runCmd(bin string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// startTLSLeaf runs STARTTLS on a new session and returns the DER of the
// server's certificate.
func startTLSLeaf(t *testing.T, addr string) []byte {
	t.Helper()
	rc, _, _ := dialSMTP(t, addr, "")
	rc.must("EHLO client.test", 250)
	rc.must("STARTTLS", 220)
	tc := tls.Client(rc.c, &tls.Config{InsecureSkipVerify: true}) // the test compares the certificate itself
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	return tc.ConnectionState().PeerCertificates[0].Raw
}

func pemBlock(t *testing.T, path string) []byte {
	t.Helper()
	b, _ := pem.Decode([]byte(readFile(t, path)))
	if b == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	return b.Bytes
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}
