package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/internal/testpeer"
)

// TestProofSendmail drives the built binary as `sendmail` (a symlink, as
// the package installs it) the way PHP's mail() and cron call it, into a
// running relay that delivers to smtp-sink; then against a relay that is
// down (EX_TEMPFAIL, nothing kept) and one that refuses a recipient.
func TestProofSendmail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sk := startSink(t)
	smtpAddr := freeAddr(t)
	cfg := writeConfig(t, dir, smtpAddr, routeTo("ex.test", sk.addr)+routeTo("sluice.test", sk.addr))
	startRelay(t, cfg, smtpAddr)
	link := filepath.Join(dir, "bin", "sendmail")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(buildTool(t, "sluice/cmd/sluice"), link); err != nil {
		t.Fatal(err)
	}
	// sendmail runs with an empty working directory and TMPDIR: after
	// every run, including the failed ones, they must still be empty
	// (nothing is spooled locally).
	work := filepath.Join(dir, "work")
	os.MkdirAll(work, 0o755)
	run := func(stdin string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(link, args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "TMPDIR="+work)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if ents, _ := os.ReadDir(work); len(ents) > 0 {
			t.Errorf("sendmail left %d files in its working directory", len(ents))
		}
		return string(out), code
	}
	withSubject := func(t *testing.T, subject string) string {
		t.Helper()
		defer func() {
			if t.Failed() {
				t.Logf("relay log:\n%s", relayLog(cfg))
			}
		}()
		var found string
		eventually(t, 20*time.Second, "the message "+subject+" at the sink", func() bool {
			ents, _ := os.ReadDir(sk.dir)
			for _, e := range ents {
				b, _ := os.ReadFile(filepath.Join(sk.dir, e.Name()))
				if bytes.Contains(b, []byte("\nSubject: "+subject+"\n")) {
					found = string(b)
					return true
				}
			}
			return false
		})
		return found
	}

	t.Run("php style -t -i", func(t *testing.T) {
		// What PHP's mail() writes to `sendmail -t -i`: LF line
		// endings, To and Subject first, the extra headers, the body;
		// a line with a single dot is text under -i.
		msg := "To: a@ex.test\nSubject: php-style\nFrom: app@ex.test\nCc: C <c@ex.test>\nBcc: hidden@ex.test\n\nline one\n.\nline three\n"
		out, code := run(msg, "--config", cfg, "-t", "-i")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		got := withSubject(t, "php-style")
		// smtp-sink dumps the envelope as X- fields, then the message
		// unstuffed, with LF endings.
		for _, want := range []string{"X-Rcpt-Args: <a@ex.test>", "X-Rcpt-Args: <c@ex.test>", "X-Rcpt-Args: <hidden@ex.test>",
			"\nFrom: app@ex.test\n", "\nline one\n.\nline three\n"} {
			if !strings.Contains(got, want) {
				t.Errorf("the sink's copy lacks %q:\n%s", want, got)
			}
		}
		if strings.Contains(strings.ToLower(got), "\nbcc:") {
			t.Errorf("the Bcc field went out:\n%s", got)
		}
	})

	t.Run("php mail()", func(t *testing.T) {
		php := testpeer.Need(t, "php")
		// The real mail() of PHP with sendmail_path pointing at the link.
		script := `exit(mail("a@ex.test", "php-mail", "Hello from PHP\n.\nend", "From: web@ex.test\r\nBcc: blind@ex.test") ? 0 : 1);`
		cmd := exec.Command(php, "-n", "-d", "sendmail_path="+link+" --config "+cfg+" -t -i", "-r", script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("php mail(): %v\n%s", err, out)
		}
		got := withSubject(t, "php-mail")
		if !strings.Contains(got, "X-Rcpt-Args: <blind@ex.test>") || !strings.Contains(got, "X-Rcpt-Args: <a@ex.test>") {
			t.Errorf("recipients missing:\n%s", got)
		}
		if strings.Contains(strings.ToLower(got), "\nbcc:") {
			t.Errorf("the Bcc field went out:\n%s", got)
		}
	})

	t.Run("cron", func(t *testing.T) {
		// cronie: sendmail -FCronDaemon -i -B8BITMIME -oem MAILTO, with
		// a header naming a bare local user and an 8-bit body.
		msg := "From: \"(Cron Daemon)\" <root>\nTo: root\nSubject: Cron <root@host> run-parts\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nAuto-Submitted: auto-generated\nPrecedence: bulk\n\nrésumé of the job\n"
		out, code := run(msg, "--config", cfg, "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		got := withSubject(t, "Cron <root@host> run-parts")
		if !strings.Contains(got, "X-Rcpt-Args: <root@sluice.test>") {
			t.Errorf("the bare local part was not qualified with the hostname:\n%s", got)
		}
		if !strings.Contains(got, "résumé of the job") {
			t.Errorf("8-bit body altered:\n%s", got)
		}
	})

	t.Run("no From gets one from -f and -F", func(t *testing.T) {
		out, code := run("Subject: no-from\n\nbody\n", "--config", cfg, "-f", "ops@ex.test", "-F", "Ops Team", "x@ex.test")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		got := withSubject(t, "no-from")
		if !strings.Contains(got, "\nFrom: \"Ops Team\" <ops@ex.test>\n") || !strings.Contains(got, "X-Mail-Args: <ops@ex.test>") {
			t.Errorf("From or envelope sender wrong:\n%s", got)
		}
	})

	t.Run("refused recipient", func(t *testing.T) {
		// An address literal is refused at RCPT (553 5.1.3): nothing
		// is sent, not even to the recipient that was accepted.
		out, code := run("Subject: refused\n\nx\n", "--config", cfg, "ok@ex.test", "x@[127.0.0.1]")
		if code != exNoUser || !strings.Contains(out, "553") {
			t.Fatalf("exit %d, want %d (EX_NOUSER): %s", code, exNoUser, out)
		}
	})

	t.Run("no recipients", func(t *testing.T) {
		if out, code := run("Subject: x\n\nx\n", "--config", cfg, "-t"); code != exDataErr {
			t.Errorf("exit %d, want %d: %s", code, exDataErr, out)
		}
	})

	t.Run("relay down", func(t *testing.T) {
		down := writeConfig(t, t.TempDir(), freeAddr(t), "")
		out, code := run("To: a@ex.test\nSubject: down\n\nx\n", "--config", down, "-t", "-i")
		if code != exTempFail || !strings.Contains(out, "not reachable") {
			t.Fatalf("exit %d, want %d (EX_TEMPFAIL): %s", code, exTempFail, out)
		}
	})

	t.Run("bad config", func(t *testing.T) {
		if out, code := run("x", "--config", filepath.Join(dir, "missing.toml"), "a@ex.test"); code != exConfig {
			t.Errorf("exit %d, want %d (EX_CONFIG): %s", code, exConfig, out)
		}
	})

	t.Run("-bs", func(t *testing.T) {
		// An SMTP session on stdin and stdout, with LF line endings as
		// a script types them.
		session := "EHLO script\nMAIL FROM:<bs@ex.test>\nRCPT TO:<x@ex.test>\nDATA\nSubject: bs-mode\n\nhi\n.\nQUIT\n"
		out, code := run(session, "--config", cfg, "-bs")
		if code != 0 || !strings.Contains(out, "250 2.0.0 OK: queued as") || !strings.Contains(out, "221") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		withSubject(t, "bs-mode")
	})

	t.Run("--smtp without a config", func(t *testing.T) {
		// For callers that may not read the config (the package keeps
		// /etc/sluice to root and group sluice).
		out, code := run("To: smtp-flag@ex.test\nSubject: smtp-flag\n\nx\n", "--smtp", smtpAddr, "--config", "/nonexistent.toml", "-t", "-i", "-f", "app@ex.test")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		withSubject(t, "smtp-flag")
	})

	t.Run("as sluice sendmail", func(t *testing.T) {
		cmd := exec.Command(buildTool(t, "sluice/cmd/sluice"), "sendmail", "--config", cfg, "-t", "-i")
		cmd.Stdin = strings.NewReader("To: sub@ex.test\nSubject: subcommand\n\nx\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		withSubject(t, "subcommand")
	})
}
