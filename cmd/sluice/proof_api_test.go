package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProofHTTPAPI drives the built binary's HTTP API (listen.api, HTTPS
// with the [tls] certificate) with curl: a token from `sluice token new`,
// both body forms delivered to smtp-sink, an Idempotency-Key retried
// across a restart (the same ID, one delivery), the problem answers 401,
// 403, 413, 415 and 422, the accepted event of an API message in the
// events file, and a renewed certificate taken by a reload (SIGHUP).
func TestProofHTTPAPI(t *testing.T) {
	t.Parallel()
	curl := needTool(t, "curl")
	bin := buildTool(t, "sluice/cmd/sluice")
	dir := t.TempDir()
	sk := startSink(t)
	smtpAddr, apiAddr := freeAddr(t), freeAddr(t)
	certFile, keyFile := selfSignedCert(t, dir)

	out, err := exec.Command(bin, "token", "new").Output()
	if err != nil {
		t.Fatalf("token new: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "sluice_") || !strings.HasPrefix(lines[1], `api_token_hash = "sha256:`) {
		t.Fatalf("token new printed %q", out)
	}
	token := lines[0]
	if lines[1] != "api_token_hash = \""+tokenHash(token)+"\"" {
		t.Fatalf("the hash line %q is not the token's", lines[1])
	}

	cfg := writeConfig(t, dir, smtpAddr, routeTo("ex.test", sk.addr)+`
[tls]
cert_file = "`+certFile+`"
key_file = "`+keyFile+`"

[limits]
max_message_size = "64KB"

[[access.user]]
name = "app"
`+lines[1]+`
allowed_from = ["app.test"]

[events]
file = "events.jsonl"
`)
	b := readFile(t, cfg)
	writeConfigRaw(t, cfg, strings.Replace(b, "http = \"\"\n", "http = \"\"\napi = \""+apiAddr+"\"\n", 1))
	p := startRelay(t, cfg, smtpAddr)
	waitListening(t, apiAddr, 15*time.Second)
	defer func() {
		if t.Failed() {
			t.Logf("relay log:\n%s", relayLog(cfg))
		}
	}()

	parent := t
	_, port, _ := net.SplitHostPort(apiAddr)
	url := "https://sluice.test:" + port + "/v1/messages"
	type answer struct {
		status  int
		body    map[string]any
		headers string
	}
	caFile := certFile
	post := func(t *testing.T, auth, ctype, key, body string) answer {
		t.Helper()
		hdrFile := filepath.Join(dir, "headers.txt")
		args := []string{"-sS", "--cacert", caFile, "--resolve", "sluice.test:" + port + ":127.0.0.1",
			"-D", hdrFile, "-o", "-", "-w", "\n%{http_code}", "-X", "POST", "--data-binary", "@-", url}
		if auth != "" {
			args = append(args, "-H", "Authorization: Bearer "+auth)
		}
		if ctype != "" {
			args = append(args, "-H", "Content-Type: "+ctype)
		}
		if key != "" {
			args = append(args, "-H", "Idempotency-Key: "+key)
		}
		cmd := exec.Command(curl, args...)
		cmd.Stdin = strings.NewReader(body)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		i := bytes.LastIndexByte(out, '\n')
		code, _ := strconv.Atoi(string(out[i+1:]))
		a := answer{status: code, headers: readFile(t, hdrFile)}
		if err := json.Unmarshal(out[:i], &a.body); err != nil {
			t.Fatalf("status %d, not JSON: %q", code, out[:i])
		}
		return a
	}
	delivered := func(t *testing.T, subject string) []string {
		t.Helper()
		var found []string
		ents, _ := os.ReadDir(sk.dir)
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(sk.dir, e.Name()))
			if bytes.Contains(b, []byte("\nSubject: "+subject+"\n")) {
				found = append(found, string(b))
			}
		}
		return found
	}
	waitDelivered := func(t *testing.T, subject string) string {
		t.Helper()
		var got []string
		eventually(t, 20*time.Second, "the message "+subject+" at the sink", func() bool {
			got = delivered(t, subject)
			return len(got) > 0
		})
		return got[0]
	}

	t.Run("structured", func(t *testing.T) {
		a := post(t, token, "application/json", "", `{"from":"app@app.test","to":["one@ex.test"],"subject":"api structured",
			"text":"Grüße aus der API\n","html":"<p>Grüße</p>","headers":{"Reply-To":"Zoë <help@app.test>"}}`)
		if a.status != 202 || a.body["status"] != "queued" || a.body["id"] == "" {
			t.Fatalf("%d %v", a.status, a.body)
		}
		m := waitDelivered(t, "api structured")
		// The accepted event of an API message, as for SMTP (the queue's
		// transaction writes it).
		evFile := filepath.Join(dir, "events.jsonl")
		eventually(t, 20*time.Second, "the accepted event in "+evFile, func() bool {
			b, _ := os.ReadFile(evFile)
			return bytes.Contains(b, []byte(`"type":"accepted"`)) && bytes.Contains(b, []byte(`"message_id":"`+a.body["id"].(string)+`"`))
		})
		for _, want := range []string{"with HTTPS id", "MIME-Version: 1.0", "Content-Type: multipart/alternative;", "Content-Transfer-Encoding: quoted-printable",
			"Gr=C3=BC=C3=9Fe aus der API", "Reply-To: =?utf-8?q?Zo=C3=AB?= <help@app.test>", "From: <app@app.test>", "To: <one@ex.test>", "Message-ID: <", "Date: "} {
			if !strings.Contains(m, want) {
				t.Errorf("delivered message lacks %q:\n%s", want, m)
			}
		}
	})
	t.Run("raw", func(t *testing.T) {
		raw := base64.StdEncoding.EncodeToString([]byte("From: App <app@app.test>\nTo: two@ex.test\nSubject: api raw\n\nraw body line\n"))
		a := post(t, token, "application/json", "", `{"from":"app@app.test","to":["two@ex.test"],"raw":"`+raw+`"}`)
		if a.status != 202 {
			t.Fatalf("%d %v", a.status, a.body)
		}
		if m := waitDelivered(t, "api raw"); !strings.Contains(m, "\nraw body line\n") || !strings.Contains(m, "with HTTPS id") {
			t.Errorf("delivered:\n%s", m)
		}
	})
	t.Run("idempotency across a restart", func(t *testing.T) {
		body := `{"from":"app@app.test","to":["three@ex.test"],"subject":"api once","text":"once"}`
		first := post(t, token, "application/json", "order-4711", body)
		if first.status != 202 {
			t.Fatalf("%d %v", first.status, first.body)
		}
		waitDelivered(t, "api once")
		p.stop(t)
		p = startRelay(parent, cfg, smtpAddr) // lives on after this subtest
		waitListening(t, apiAddr, 15*time.Second)
		again := post(t, token, "application/json", "order-4711", body)
		if again.status != 202 || again.body["id"] != first.body["id"] || !strings.Contains(again.headers, "Idempotent-Replayed: true") {
			t.Fatalf("retry after restart: %d %v %q, want 202 with id %v, replayed", again.status, again.body, again.headers, first.body["id"])
		}
		reused := post(t, token, "application/json", "order-4711", strings.Replace(body, "once", "twice", 1))
		if reused.status != 422 || reused.body["reason"] != "idempotency-key-reused" {
			t.Fatalf("key reused for another body: %d %v", reused.status, reused.body)
		}
		// A later message delivered means the retry would have been too.
		if a := post(t, token, "application/json", "", `{"from":"app@app.test","to":["three@ex.test"],"subject":"api marker","text":"m"}`); a.status != 202 {
			t.Fatalf("%d %v", a.status, a.body)
		}
		waitDelivered(t, "api marker")
		if n := len(delivered(t, "api once")); n != 1 {
			t.Fatalf("the idempotent message was delivered %d times", n)
		}
	})
	t.Run("problems", func(t *testing.T) {
		ok := `{"from":"app@app.test","to":["x@ex.test"],"subject":"p","text":"x"}`
		for _, tc := range []struct {
			name, auth, ctype, body string
			status                  int
			reason                  string
		}{
			{"no token", "", "application/json", ok, 401, "unauthorized"},
			{"wrong token", token + "x", "application/json", ok, 401, "unauthorized"},
			{"form post", token, "application/x-www-form-urlencoded", ok, 415, "unsupported-media-type"},
			{"too big", token, "application/json", `{"from":"app@app.test","to":["x@ex.test"],"text":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "too-big"},
			{"header injection", token, "application/json", `{"from":"app@app.test","to":["x@ex.test"],"text":"x","headers":{"X-A":"1\r\nBcc: v@ex.test"}}`, 422, "invalid-message"},
			{"bad recipient", token, "application/json", `{"from":"app@app.test","to":["not an address"],"text":"x"}`, 422, "invalid-message"},
			{"bad recipient, raw", token, "application/json", `{"from":"app@app.test","to":["not an address"],"raw":"U3ViamVjdDogeA0KDQp4DQo="}`, 422, "refused"},
			{"sender not allowed", token, "application/json", `{"from":"app@other.test","to":["x@ex.test"],"text":"x"}`, 403, "sender-not-allowed"},
		} {
			a := post(t, tc.auth, tc.ctype, "", tc.body)
			if a.status != tc.status || a.body["reason"] != tc.reason || a.body["status"] != float64(tc.status) ||
				!strings.Contains(a.headers, "Content-Type: application/problem+json") {
				t.Errorf("%s: %d %v\n%s", tc.name, a.status, a.body, a.headers)
			}
		}
	})
	t.Run("a renewed certificate by reload", func(t *testing.T) {
		old := filepath.Join(dir, "old-ca.pem")
		if err := os.Rename(certFile, old); err != nil {
			t.Fatal(err)
		}
		sub := t.TempDir()
		newCert, newKey := selfSignedCert(t, sub)
		for from, to := range map[string]string{newCert: certFile, newKey: keyFile} {
			if err := os.WriteFile(to, []byte(readFile(t, from)), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		before := strings.Count(relayLog(cfg), "config reloaded")
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "the reload", func() bool { return strings.Count(relayLog(cfg), "config reloaded") > before })
		caFile = certFile
		if a := post(t, token, "application/json", "", `{"from":"app@app.test","to":["x@ex.test"],"subject":"api renewed","text":"x"}`); a.status != 202 {
			t.Fatalf("with the renewed certificate: %d %v", a.status, a.body)
		}
		_, port, _ := net.SplitHostPort(apiAddr)
		out, err := exec.Command(curl, "-sS", "--cacert", old, "--resolve", "sluice.test:"+port+":127.0.0.1", url).CombinedOutput()
		if err == nil {
			t.Fatalf("the old certificate is still served: %s", out)
		}
	})
}
