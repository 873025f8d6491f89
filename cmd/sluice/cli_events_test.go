package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/events"
	"sluice/internal/fakemx"
	"sluice/queue"
)

// TestE2EEventsCommands drives `sluice events`, `events tail` and `events
// replay` against a relay whose only sink is the JSON-lines file: tail
// prints the events of a delivery as they happen, the file has them, and
// a replay writes them again with the same IDs. Without a sink, tail says
// events are not stored.
func TestE2EEventsCommands(t *testing.T) {
	mx := startFakeMX(t, fakemx.Options{})
	dir := t.TempDir()
	smtpAddr := freeAddr(t)
	evFile := filepath.Join(dir, "events.jsonl")
	cfg := writeAdminConfig(t, dir, smtpAddr, "", routeTo("dest.test", mx.Addr())+"\n[events]\nfile = \"events.jsonl\"\n")
	startRelay(t, cfg, smtpAddr)

	// From the first event on (--after 0...0), so that the test does not
	// depend on when the stream connects.
	tail := exec.Command(buildTool(t, "sluice/cmd/sluice"), "events", "tail", "--after", "0000000000000000", "--config", cfg)
	out, err := tail.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tail.Process.Kill(); tail.Wait() })
	lines := make(chan queue.Event, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e queue.Event
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				lines <- e
			}
		}
		close(lines)
	}()
	var st events.Status
	cliJSON(t, &st, "events", "--config", cfg)
	if !st.On || len(st.Sinks) != 1 || st.Sinks[0].Kind != "file" {
		t.Fatalf("events status %+v", st)
	}
	submit(t, smtpAddr, 1, "user@dest.test")
	var got []string
	deadline := time.After(30 * time.Second)
	for len(got) < 2 {
		select {
		case e, ok := <-lines:
			if !ok {
				t.Fatalf("tail ended after %v", got)
			}
			got = append(got, e.Type+":"+e.ID)
		case <-deadline:
			t.Fatalf("tail printed %v, want accepted and delivered", got)
		}
	}
	if got[0] != "accepted:0000000000000001" || got[1] != "delivered:0000000000000002" {
		t.Fatalf("tail: %v", got)
	}
	eventually(t, 10*time.Second, "both events in the file", func() bool { return len(fileEvents(t, evFile)) == 2 })

	text, code := cli(t, "events", "--config", cfg)
	if code != 0 || !strings.Contains(text, "outbox:") || !strings.Contains(text, evFile) {
		t.Fatalf("events: exit %d\n%s", code, text)
	}
	text, code = cli(t, "events", "replay", "--since", "1h", "--config", cfg)
	if code != 0 || !strings.Contains(text, "replaying 2 events from 0000000000000001") {
		t.Fatalf("replay: exit %d\n%s", code, text)
	}
	eventually(t, 10*time.Second, "the replay in the file", func() bool { return len(fileEvents(t, evFile)) == 4 })
	evs := fileEvents(t, evFile)
	if evs[2].ID != evs[0].ID || evs[3].ID != evs[1].ID || evs[3].Type != "delivered" {
		t.Fatalf("replayed %+v", evs)
	}
	if _, code := cli(t, "events", "replay", "--config", cfg); code != 2 {
		t.Fatalf("replay without --since: exit %d, want 2", code)
	}

	// A reload adds a webhook: it gets the events from then on, signed.
	hook := &hookRecorder{secret: "reload-secret", byID: map[string]queue.Event{}}
	hsrv := httptest.NewServer(hook)
	t.Cleanup(hsrv.Close)
	if err := os.WriteFile(filepath.Join(dir, "hook.secret"), []byte(hook.secret), 0o600); err != nil {
		t.Fatal(err)
	}
	webhook := fmt.Sprintf("\n[[events.webhook]]\nurl = %q\nsecret_file = \"hook.secret\"\n", hsrv.URL)
	writeAdminConfig(t, dir, smtpAddr, "", routeTo("dest.test", mx.Addr())+"\n[events]\nfile = \"events.jsonl\"\n"+webhook)
	if text, code := cli(t, "reload", "--config", cfg); code != 0 {
		t.Fatalf("reload: exit %d\n%s", code, text)
	}
	submit(t, smtpAddr, 1, "other@dest.test")
	eventually(t, 20*time.Second, "the reloaded webhook has the new message's events", func() bool {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		return len(hook.byID) >= 2
	})
	hook.mu.Lock()
	for id, e := range hook.byID {
		if e.Recipient != "other@dest.test" || id <= evs[1].ID {
			t.Errorf("the new webhook got %s %+v: a sink added by reload starts at the end of the outbox", id, e)
		}
	}
	if len(hook.bad) > 0 {
		t.Errorf("bad signatures: %v", hook.bad)
	}
	hook.mu.Unlock()
	// A reload whose events.file cannot be opened is refused.
	writeAdminConfig(t, dir, smtpAddr, "", routeTo("dest.test", mx.Addr())+"\n[events]\nfile = \"no-such-dir/events.jsonl\"\n")
	if text, code := cli(t, "reload", "--config", cfg); code != 1 || !strings.Contains(text, "events.file") {
		t.Fatalf("reload with a bad events.file: exit %d\n%s", code, text)
	}

	// No sink: events are not stored, and tail says so.
	dir2 := t.TempDir()
	smtp2 := freeAddr(t)
	cfg2 := writeAdminConfig(t, dir2, smtp2, "", routeTo("dest.test", mx.Addr()))
	startRelay(t, cfg2, smtp2)
	text, code = cli(t, "events", "tail", "--config", cfg2)
	if code != 1 || !strings.Contains(text, "no event sink is configured") {
		t.Fatalf("tail without a sink: exit %d\n%s", code, text)
	}
}

func fileEvents(t *testing.T, path string) []queue.Event {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []queue.Event
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e queue.Event
		if json.Unmarshal([]byte(l), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}
