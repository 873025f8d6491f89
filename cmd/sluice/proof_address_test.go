package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestProofQuotedAddressesReachSink: RFC 5321 §4.1.2 addresses whose
// quoted local part holds '@', a quoted-pair or nothing at all are taken
// from a real client (swaks), queued, and reach a real receiver
// (smtp-sink) byte for byte in MAIL FROM and RCPT TO.
func TestProofQuotedAddressesReachSink(t *testing.T) {
	t.Parallel()
	snk := startSink(t)
	dir := t.TempDir()
	smtp := freeAddr(t)
	cfg := writeConfig(t, dir, smtp, routeTo("dest.test", snk.addr))
	startRelay(t, cfg, smtp)
	rcpts := []string{`"john@doe"@dest.test`, `"x\\@y"@dest.test`, `""@dest.test`, `"a b"@dest.test`}
	out, err := swaks(t, "--server", smtp, "--from", `"s@x"@src.test`, "--to", strings.Join(rcpts, ","),
		"--header", "Message-Id: <quoted-1@sluice.test>", "--helo", "client.test")
	if err != nil || !strings.Contains(out, "queued as") {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	for _, want := range []string{"250 2.1.0 Sender OK", "250 2.1.5 Recipient OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the swaks transcript:\n%s", want, out)
		}
	}
	var mail, got []string
	eventually(t, 15*time.Second, "delivery to smtp-sink", func() bool {
		mail, got = sinkEnvelope(snk)
		return len(got) >= len(rcpts)
	})
	slices.Sort(got)
	want := slices.Clone(rcpts)
	for i := range want {
		want[i] = "<" + want[i] + ">"
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the sink got RCPT TO %q, want %q", got, want)
	}
	for _, m := range mail {
		if m != `<"s@x"@src.test>` {
			t.Errorf("the sink got MAIL FROM %q", m)
		}
	}
}

// sinkEnvelope reads the MAIL FROM and RCPT TO arguments smtp-sink wrote
// into its dumps (X-Mail-Args:, X-Rcpt-Args:).
func sinkEnvelope(s *sink) (mail, rcpt []string) {
	entries, _ := os.ReadDir(s.dir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			l = strings.TrimRight(l, "\r")
			if v, ok := strings.CutPrefix(l, "X-Mail-Args: "); ok {
				mail = append(mail, v)
			}
			if v, ok := strings.CutPrefix(l, "X-Rcpt-Args: "); ok {
				rcpt = append(rcpt, v)
			}
		}
	}
	return mail, rcpt
}
