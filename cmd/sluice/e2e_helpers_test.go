package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sluice/internal/testpeer"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The integration tests drive the real built binary with real SMTP peers:
// swaks, and smtp-sink/smtp-source from Debian's postfix package. They
// touch only loopback.

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildTool builds a command of this module once per test binary.
func buildTool(t *testing.T, pkg string) string {
	t.Helper()
	out := filepath.Join(binDir, filepath.Base(pkg))
	if _, err := os.Stat(out); err == nil {
		return out
	}
	cmd := exec.Command("go", append(append([]string{"build"}, stampFlags()...), "-o", out, pkg)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// stampFlags stamp the binary with its revision as build.sh does for a
// release: -buildvcs=true overrides a GOFLAGS=-buildvcs=false in the
// environment, and where Go cannot stamp (a git worktree, whose .git is
// a file) the linker gets the revision from git (see version.go).
func stampFlags() []string {
	flags := []string{"-buildvcs=true"}
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return flags // not a checkout: the version says the revision is unknown
	}
	modified := "false"
	if st, err := exec.Command("git", "status", "--porcelain").Output(); err != nil || len(strings.TrimSpace(string(st))) > 0 {
		modified = "true"
	}
	return append(flags, "-ldflags", "-X main.vcsRevision="+strings.TrimSpace(string(rev))+" -X main.vcsModified="+modified)
}

func needTool(t *testing.T, name string) string {
	t.Helper()
	return testpeer.Need(t, name)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitListening(t *testing.T, addr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			// Read the banner so the server does not log a dropped client.
			c.SetReadDeadline(time.Now().Add(time.Second))
			bufio.NewReader(c).ReadString('\n')
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s after %v", addr, d)
}

// sink is smtp-sink dumping every transaction into a directory.
type sink struct {
	addr, dir string
	cmd       *exec.Cmd
}

func startSink(t *testing.T) *sink {
	t.Helper()
	return startSinkAt(t, freeAddr(t))
}

var msgIDRe = regexp.MustCompile(`(?mi)^Message-ID:[ \t]*(<[^>\r\n]+>)`)

// messageIDs counts the Message-IDs of every dumped message.
func (s *sink) messageIDs(t *testing.T) map[string]int {
	t.Helper()
	ids := map[string]int{}
	entries, _ := os.ReadDir(s.dir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			continue
		}
		for _, m := range msgIDRe.FindAllSubmatch(b, 1) {
			ids[string(m[1])]++
		}
	}
	return ids
}

// relayProc is one running sluice serve.
type relayProc struct {
	cmd  *exec.Cmd
	smtp string
	log  *os.File
	done chan struct{}
}

// writeConfig writes a config for a loopback test relay and returns its path.
func writeConfig(t *testing.T, dir, smtpAddr, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`hostname = "sluice.test"
data_dir = "data"
shutdown_grace = "5s"

[listen]
smtp = %q
http = ""

[policy]
retry_base = "1s"
retry_max = "2s"
greylist_default = "2s"

[auth]
mode = "off"
%s
`, smtpAddr, extra)
	p := filepath.Join(dir, "sluice.toml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func routeTo(domain, host string) string {
	return fmt.Sprintf("\n[[delivery.route]]\ndomain = %q\nhost = %q\ntls = \"none\"\n", domain, host)
}

func startRelay(t *testing.T, cfgPath, smtpAddr string) *relayProc {
	t.Helper()
	bin := buildTool(t, "sluice/cmd/sluice")
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(cfgPath), "sluice.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &relayProc{cmd: cmd, smtp: smtpAddr, log: logf, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill(); logf.Close() })
	waitListening(t, smtpAddr, 15*time.Second)
	return p
}

func (p *relayProc) kill() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *relayProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("sluice did not stop within 20s of SIGTERM")
	}
}

func relayLog(cfgPath string) string {
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(cfgPath), "sluice.log"))
	return string(b)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func swaks(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := needTool(t, "swaks")
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

func readLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeConfigRaw(t *testing.T, p, body string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// body returns the dumped message with that Message-ID.
func (s *sink) body(t *testing.T, msgID string) string {
	t.Helper()
	entries, _ := os.ReadDir(s.dir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			continue
		}
		if m := msgIDRe.FindSubmatch(b); m != nil && string(m[1]) == msgID {
			return string(b)
		}
	}
	return ""
}
