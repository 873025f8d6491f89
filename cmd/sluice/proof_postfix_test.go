package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sluice/internal/testpeer"
)

// TestProofPostfixTLS (issue 14) is the interop test against Debian's
// Postfix smtpd as a real TLS receiver: a private Postfix instance (its
// own config directory, queue and port on loopback, started with
// `postfix -c DIR start-fg`, logging to stdout) presents a certificate
// for mx.postfix.test from the test CA. The built sluice, with
// [[delivery.tls_policy]] verify and the test CA in delivery.ca_file,
// delivers to postfix.test over TLS verified for that name, and Postfix
// logs the TLS session and the message; alias.test, whose MX name is
// not in Postfix's certificate, is refused (tls-policy), never sent.
//
// Postfix's master must start as root (it binds, then runs its daemons
// as mail_owner): the test is skipped for other users.
func TestProofPostfixTLS(t *testing.T) {
	t.Parallel()
	postfix := testpeer.Need(t, "postfix")
	if os.Geteuid() != 0 {
		t.Skip("Postfix's master daemon must be started as root (it drops to mail_owner itself); run the tests as root")
	}
	if _, err := user.Lookup("postfix"); err != nil {
		testpeer.Missing(t, "no postfix user (the postfix package creates it)")
	}
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	pf := startPostfix(t, postfix, ca.issue("mx.postfix.test"))
	_, port, _ := net.SplitHostPort(pf.addr)
	ns := serveDNS(t, testZone(
		"postfix.test. 300 IN MX 10 mx.postfix.test.",
		"mx.postfix.test. 300 IN A 127.0.0.1",
		"alias.test. 300 IN MX 10 mx.alias.test.",
		"mx.alias.test. 300 IN A 127.0.0.1",
	))
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(pf.log())
		}
	})
	_, cfg, smtpAddr := startRelayIn(t, dir, tlsDelivery(port, ns.Addr(), ca.file, verifyPolicies("postfix.test", "alias.test")))
	submitPlain(t, smtpAddr, "user@postfix.test")
	submitPlain(t, smtpAddr, "user@alias.test")
	eventually(t, 30*time.Second, "postfix.test delivered to Postfix over verified TLS, alias.test refused", func() bool {
		log := relayLog(cfg)
		return strings.Contains(log, "to=user@postfix.test relay=mx.postfix.test[127.0.0.1]:"+port) &&
			strings.Contains(log, "status=sent") && strings.Contains(log, "dest=alias.test") &&
			strings.Contains(pf.log(), "to=<user@postfix.test>")
	})
	plog := pf.log()
	for _, want := range []string{
		"TLS connection established from localhost[127.0.0.1]", // smtpd_tls_loglevel = 1
		"from=<app@src.test>",
		"to=<user@postfix.test>",
		"status=sent",
		// alias.test: sluice aborts the handshake on the name mismatch.
		"alert bad certificate",
	} {
		if !strings.Contains(plog, want) {
			t.Errorf("Postfix's log lacks %q", want)
		}
	}
	if strings.Contains(plog, "to=<user@alias.test>") {
		t.Error("user@alias.test reached Postfix although its certificate is not valid for mx.alias.test")
	}
	if !strings.Contains(relayLog(cfg), "x509: certificate is valid for mx.postfix.test, not mx.alias.test") {
		t.Error("sluice's log does not say why alias.test was refused")
	}
}

// postfixProc is a private Postfix instance.
type postfixProc struct {
	addr string
	mu   sync.Mutex
	out  *bytes.Buffer
}

func (p *postfixProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *postfixProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// startPostfix runs Postfix from a config directory of its own: main.cf
// with its own queue and data directories (Postfix's daemons, running
// as the postfix user, must reach them: the directory is 0755, not a
// 0700 test temp dir), inet_interfaces on loopback, every transport
// "discard" (the message is accepted, queued, logged and dropped), and
// a master.cf with only the services an smtpd receiver needs, none
// chrooted. `postfix check` creates the queue's subdirectories;
// `start-fg` keeps master in the foreground with the log on stdout
// (maillog_file = /dev/stdout, Postfix 3.4+): no syslog needed.
func startPostfix(t *testing.T, postfix string, cert tls.Certificate) *postfixProc {
	t.Helper()
	dir, err := os.MkdirTemp("", "sluice-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	var chain bytes.Buffer
	for _, c := range cert.Certificate {
		pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: c})
	}
	u, err := user.Lookup("postfix")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, f := range []struct {
		name string
		body []byte
		mode os.FileMode
	}{
		{"cert.pem", chain.Bytes(), 0o644},
		{"key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.body, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"queue", "data"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(filepath.Join(dir, "data"), uid, gid); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
command_directory = %[2]s
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = no
myhostname = mx.postfix.test
mydomain = postfix.test
myorigin = postfix.test
mydestination = postfix.test
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_transport = discard
default_transport = discard
relay_transport = discard
smtpd_tls_cert_file = %[1]s/cert.pem
smtpd_tls_key_file = %[1]s/key.pem
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_banner = $myhostname ESMTP
biff = no
`, dir, filepath.Dir(postfix))
	masterCF := addr + ` inet n - n - - smtpd
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
discard   unix  - - n -    - discard
error     unix  - - n -    - error
retry     unix  - - n -    - error
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
tlsmgr    unix  - - n 1000? 1 tlsmgr
postlog   unix-dgram n - n - 1 postlogd
`
	writeCF := func(main string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte(main), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCF(mainCF)
	if err := os.WriteFile(filepath.Join(dir, "master.cf"), []byte(masterCF), 0o644); err != nil {
		t.Fatal(err)
	}
	// `postfix check` (post-install) makes the queue's subdirectories.
	// It must run before maillog_file names stdout: the postfix command
	// refuses a maillog_file without a running postlogd and says
	// nothing, and syslog is what it would have said it to.
	if out, err := exec.Command(postfix, "-c", dir, "check").CombinedOutput(); err != nil {
		t.Fatalf("postfix -c %s check: %v\n%s", dir, err, out)
	}
	writeCF(mainCF + "maillog_file = /dev/stdout\n")
	p := &postfixProc{addr: addr, out: &bytes.Buffer{}}
	cmd := exec.Command(postfix, "-c", dir, "start-fg")
	cmd.Stdout, cmd.Stderr = p, p
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		exec.Command(postfix, "-c", dir, "stop").Run()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case <-done:
			t.Fatalf("postfix exited at start-up:\n%s", p.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix is not listening on %s after 15s:\n%s", addr, p.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
