package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLILint runs the built binary on the lint corpus, offline and with
// no config: text and JSON output, escaped evidence, and the exit status
// CI relies on (1 for a block finding, 0 for warnings only, 2 when the
// check could not run).
func TestCLILint(t *testing.T) {
	t.Parallel()
	bin := buildTool(t, "sluice/cmd/sluice")
	corpus := func(name string) string { return filepath.Join("..", "..", "lint", "testdata", "corpus", name) }
	dir := t.TempDir()
	hostile := filepath.Join(dir, "hostile.eml")
	if err := os.WriteFile(hostile, []byte("From: a@example.com\r\nDate: Mon, 30 Nov 2026 02:00:00 +0000\r\nMessage-ID: <1@example.com>\r\nSubject: \x1b]0;PWNED\x07 CLICK HERE NOW\r\n\r\nhello\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// --config: the relay's file, with [tls] files that do not exist on
	// the developer's machine: only [lint] is read and validated.
	cfgFile := func(name, lintSection string) string {
		p := filepath.Join(dir, name)
		body := "[tls]\ncert_file = \"/nonexistent/cert.pem\"\nkey_file = \"/nonexistent/key.pem\"\n\n[lint]\n" + lintSection
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfgDisabled := cfgFile("disabled.toml", "disabled = [\"link-shortener\"]\n")
	cfgShort := cfgFile("short.toml", "shorteners = [\"example.com\"]\n")
	cfgBad := cfgFile("bad.toml", "mode = \"warn\"\ndisabled = [\"subject-shouting\"]\n")
	cfgTypo := cfgFile("typo.toml", "shortners = []\n")
	issue, err := os.ReadFile(corpus("issue-example.eml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		stdin  []byte
		code   int
		stdout []string // substrings of stdout
		stderr string   // substring of stderr
	}{
		{"clean", []string{"lint", corpus("clean-receipt.eml")}, nil, 0, []string{"no findings\n"}, ""},
		{"block", []string{"lint", corpus("issue-example.eml")}, nil, 1, []string{
			"block  link-shortener  https://bit.ly/3xYzAbC  fix: Link directly",
			"warn   html-no-text  text/html with no text/plain part  fix: ",
			"warn   missing-date  no Date header field",
			"info   subject-caps  Subject: LAST CHANCE TO CLAIM YOUR PRIZE",
		}, "1 finding(s) of severity block"},
		{"stdin", []string{"lint", "-"}, issue, 1, []string{"block  link-shortener  https://bit.ly/3xYzAbC"}, ""},
		{"info only exits 0", []string{"lint", corpus("subject-caps.eml")}, nil, 0, []string{"info   subject-caps"}, ""},
		{"warn only exits 0", []string{"lint", corpus("html-no-text.eml")}, nil, 0, []string{"warn   html-no-text"}, ""},
		{"disabled", []string{"lint", "--disable", "link-shortener", corpus("link-shortener-text.eml")}, nil, 0, []string{"no findings"}, ""},
		{"extra shortener", []string{"lint", "--shorteners", "example.com", corpus("clean-receipt.eml")}, nil, 1, []string{"block  link-shortener  https://shop.example.com/account/orders"}, ""},
		{"bulk", []string{"lint", "--bulk", corpus("bulk-no-unsubscribe.eml")}, nil, 1, []string{"block  bulk-no-unsubscribe  bulk sender: List-Unsubscribe has no <https:...> URI, no List-Unsubscribe-Post"}, ""},
		{"not bulk", []string{"lint", corpus("bulk-no-unsubscribe.eml")}, nil, 0, []string{"no findings"}, ""},
		{"escaped evidence", []string{"lint", hostile}, nil, 0, []string{`info   subject-caps  Subject: \x1b]0;PWNED\x07 CLICK HERE NOW`}, ""},
		{"missing file", []string{"lint", filepath.Join(dir, "nope.eml")}, nil, 2, nil, "no such file"},
		{"no file", []string{"lint"}, nil, 2, nil, "give one message file"},
		{"two files", []string{"lint", hostile, hostile}, nil, 2, nil, "give one message file"},
		{"unknown finding", []string{"lint", "--disable", "nope", hostile}, nil, 2, nil, `unknown finding "nope"`},
		{"help", []string{"lint", "--help"}, nil, 0, nil, "usage: sluice lint"},
		{"config disabled", []string{"lint", "--config", cfgDisabled, corpus("link-shortener-text.eml")}, nil, 0, []string{"no findings"}, ""},
		{"config shorteners", []string{"lint", "--config", cfgShort, corpus("clean-receipt.eml")}, nil, 1, []string{"block  link-shortener  https://shop.example.com/account/orders"}, ""},
		{"config and flags add up", []string{"lint", "--config", cfgDisabled, "--disable", "subject-caps", corpus("issue-example.eml")}, nil, 0, []string{"warn   html-no-text"}, ""},
		{"config unknown finding", []string{"lint", "--config", cfgBad, hostile}, nil, 2, nil, cfgBad + `:7: lint.disabled[1]: unknown finding ID "subject-shouting"`},
		{"config unknown key", []string{"lint", "--config", cfgTypo, hostile}, nil, 2, nil, "shortners"},
		{"config missing", []string{"lint", "--config", filepath.Join(dir, "nope.toml"), hostile}, nil, 2, nil, "cannot read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(bin, tc.args...)
			cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no config anywhere
			cmd.Stdin = bytes.NewReader(tc.stdin)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, stderr.String())
			}
			if strings.ContainsAny(stdout.String(), "\x1b\x07") {
				t.Errorf("raw control characters on stdout: %q", stdout.String())
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		t.Parallel()
		out, err := exec.Command(bin, "lint", "--json", corpus("issue-example.eml")).Output()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("exit: %v", err)
		}
		var doc struct {
			File     string
			Findings []struct{ ID, Severity, Evidence, Fix string }
		}
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		ids := map[string]string{}
		for _, f := range doc.Findings {
			ids[f.ID] = f.Severity
			if f.Fix == "" || f.Evidence == "" {
				t.Errorf("finding %+v lacks fix or evidence", f)
			}
		}
		want := map[string]string{"link-shortener": "block", "image-only": "warn", "html-no-text": "warn", "missing-date": "warn", "missing-message-id": "warn", "subject-caps": "info"}
		if len(ids) != len(want) {
			t.Errorf("findings %v, want %v", ids, want)
		}
		for id, sev := range want {
			if ids[id] != sev {
				t.Errorf("%s: severity %q, want %q", id, ids[id], sev)
			}
		}
		out, _ = exec.Command(bin, "lint", "--json", corpus("clean-invite.eml")).Output()
		if !strings.Contains(string(out), `"findings": []`) {
			t.Errorf("clean message: %s", out)
		}
	})
}
