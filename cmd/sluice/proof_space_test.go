package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProofReserveAtMail (issue 9 item 15) runs the daemon on a small
// tmpfs: below queue.min_free_space a client learns it at MAIL FROM
// (452 4.3.1) instead of after uploading the whole message, /readyz and
// `sluice status` say not ready and why, a declared SIZE that would cross
// the reserve is refused the same way (RFC 1870 §6.1), and a full disk
// during `suppress add` is a 507 naming the cause, not a 400.
func TestProofReserveAtMail(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	os.MkdirAll(dataDir, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", dataDir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dataDir).Run() })

	smtp, httpAddr := freeAddr(t), freeAddr(t)
	cfg := writeAdminConfig(t, dir, smtp, httpAddr, routeTo("dest.test", freeAddr(t))+"\n[queue]\nmin_free_space = \"4MB\"\n")
	startRelay(t, cfg, smtp)
	readyz := func() (int, string) {
		res, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	mail := func(params string) string { return mailProbe(t, smtp, params) }
	if code, body := readyz(); code != 200 {
		t.Fatalf("readyz before the fill: %d %s", code, body)
	}

	// Below the reserve: not ready, with the reason, and MAIL is refused.
	filler := fillDisk(t, dataDir, 2<<20)
	eventually(t, 5*time.Second, "/readyz to report the reserve", func() bool {
		code, body := readyz()
		return code == 503 && strings.Contains(body, "min_free_space")
	})
	if out, code := cli(t, "status", "--config", cfg); code != 1 || !strings.Contains(out, "NOT READY") || !strings.Contains(out, "min_free_space") {
		t.Errorf("status below the reserve: exit %d\n%s", code, out)
	}
	if r := mail(""); !strings.HasPrefix(r, "452 4.3.1") {
		t.Errorf("MAIL below the reserve: %q, want 452 4.3.1", r)
	}

	// Above the reserve by about 1 MB: a declared SIZE that fits is
	// taken, one that would cross the reserve is refused at MAIL.
	os.Remove(filler)
	filler = fillDisk(t, dataDir, 5<<20)
	eventually(t, 5*time.Second, "/readyz to be ready again", func() bool {
		code, _ := readyz()
		return code == 200
	})
	if r := mail(" SIZE=3000000"); !strings.HasPrefix(r, "452 4.3.1") {
		t.Errorf("MAIL SIZE=3000000 with ~1 MB above the reserve: %q, want 452 4.3.1", r)
	}
	if r := mail(" SIZE=10000"); !strings.HasPrefix(r, "250") {
		t.Errorf("MAIL SIZE=10000 above the reserve: %q, want 250", r)
	}

	// A full disk: suppress add is a storage failure (507), not a bad
	// request. A large reason makes each write need new pages.
	fillDisk(t, dataDir, 0)
	curl := needTool(t, "curl")
	reason := strings.Repeat("r", 400<<10)
	sock := filepath.Join(dataDir, "admin.sock")
	var code, body string
	for i := range 50 {
		cmd := exec.Command(curl, "-s", "-m", "10", "--unix-socket", sock, "-w", "\n%{http_code}",
			"-H", "Content-Type: application/json", "--data-binary", "@-", "http://sluice/v1/suppress")
		cmd.Stdin = strings.NewReader(fmt.Sprintf(`{"addr":"x%d@dest.test","reason":%q}`, i, reason))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		s := string(out)
		j := strings.LastIndex(s, "\n")
		code, body = s[j+1:], s[:j]
		if code != "200" {
			break
		}
	}
	if code != "507" || !strings.Contains(body, "no space") {
		t.Errorf("suppress add on a full disk: HTTP %s %s, want 507 naming the lack of space", code, body)
	}
}

// mailProbe opens a session, says EHLO and MAIL FROM (with params, e.g.
// " SIZE=1000"), and returns the reply to MAIL; nothing is queued.
func mailProbe(t *testing.T, smtp, params string) string {
	t.Helper()
	rc, code, text := dialSMTP(t, smtp, "")
	if code != 220 {
		t.Fatalf("greeting: %q", text)
	}
	defer rc.c.Close()
	rc.must("EHLO client.test", 250)
	_, text = rc.cmd("MAIL FROM:<app@src.test>" + params)
	rc.cmd("QUIT")
	return text
}
