package inbound

import (
	"os/exec"
	"sluice/internal/testpeer"
	"strings"
	"testing"
)

// Real clients against the server: swaks (STARTTLS + AUTH, and PIPELINING
// of MAIL/RCPT/DATA) and Postfix's smtp-source (several concurrent
// sessions). Skipped where the tools are not installed.

func TestInboundWithSwaks(t *testing.T) {
	t.Parallel()
	swaks := testpeer.Need(t, "swaks")
	cfg, _ := testTLS(t)
	tests := []struct {
		name string
		args []string
	}{
		{"starttls auth plain", []string{"--tls", "--auth", "PLAIN", "--auth-user", "app", "--auth-password", "secret"}},
		{"starttls auth login", []string{"--tls", "--auth", "LOGIN", "--auth-user", "app", "--auth-password", "secret"}},
		{"pipelining", []string{"--tls", "--pipeline", "--auth", "PLAIN", "--auth-user", "app", "--auth-password", "secret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, _, st := startServer(t, Options{Networks: elsewhere, TLSConfig: cfg, Users: []User{testUser(t, "app", "secret")}})
			args := append([]string{"--server", addr, "--from", "a@example.test", "--to", "b@dest.test", "--helo", "client.test", "--timeout", "10"}, tt.args...)
			out, err := exec.Command(swaks, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("swaks: %v\n%s", err, out)
			}
			if msgs := st.all(); len(msgs) != 1 || msgs[0].User != "app" {
				t.Fatalf("stored %d messages\n%s", len(msgs), out)
			}
			if !strings.Contains(string(out), "250-"+testHost+" Hello client.test") {
				t.Errorf("EHLO reply does not name us:\n%s", out)
			}
		})
	}
}

func TestInboundWithSMTPSource(t *testing.T) {
	t.Parallel()
	src := testpeer.Need(t, "smtp-source")
	addr, _, st := startServer(t, Options{})
	out, err := exec.Command(src, "-s", "4", "-m", "20", "-l", "2048", "-f", "a@example.test", "-t", "b@dest.test", "-M", testHost, addr).CombinedOutput()
	if err != nil {
		t.Fatalf("smtp-source: %v\n%s", err, out)
	}
	if n := len(st.all()); n != 20 {
		t.Fatalf("stored %d of 20 messages\n%s", n, out)
	}
}
