package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"sluice/admin"
	"sluice/internal/fakemx"
	"sluice/internal/queuegen"
)

// The damaged-queue-file proofs (issue 9 item 9): sluice never crashes
// on a damaged queue file, never starts an empty queue over a lost one
// without being told, and salvages what can be read.

// boltMeta reads what a test needs of a bbolt file's current meta page
// (the one with the higher transaction id, as bbolt picks): page size,
// root and freelist pages, high-water mark.
func boltMeta(t *testing.T, path string) (pageSize int64, root, freelist, hwm uint64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	ps := int64(le.Uint32(b[16+8:]))
	m := b[16:] // page 0, after the page header
	if m1 := b[ps+16:]; le.Uint64(m1[48:]) > le.Uint64(m[48:]) {
		m = m1
	}
	return ps, le.Uint64(m[16:]), le.Uint64(m[32:]), le.Uint64(m[40:])
}

// stoppedQueue runs a relay, queues n messages for a destination that is
// down, stops it, and returns the config path and the queue file.
func stoppedQueue(t *testing.T, n int, down string) (cfg, db string) {
	t.Helper()
	dir := t.TempDir()
	smtp := freeAddr(t)
	cfg = writeConfig(t, dir, smtp, routeTo("dest.test", down))
	r := startRelay(t, cfg, smtp)
	for i := range n {
		size := 512
		if i == 1 {
			size = 200 << 10 // above the inline limit: a spooled body
		}
		if got := submitOnce(t, smtp, "user@dest.test", fmt.Sprintf("q-%03d@proof.test", i), size); !strings.HasPrefix(got, "250") {
			t.Fatalf("submission %d: %q", i, got)
		}
	}
	r.stop(t)
	return cfg, filepath.Join(dir, "data", "queue.db")
}

// crashSigns are what a Go crash prints.
var crashSigns = regexp.MustCompile(`panic:|SIGSEGV|SIGBUS|goroutine \d+ \[|fatal error`)

// TestProofDamagedQueueFile: a truncated file, a flipped page header, a
// 0-byte file and a missing file (in a data dir that had a queue) each
// make serve exit non-zero at once with a message naming the file and
// what to do, never a crash; --new-queue starts over an empty or missing
// file, and only then.
func TestProofDamagedQueueFile(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, db string)
		want   []string
	}{
		{"truncated", func(t *testing.T, db string) {
			ps, _, _, hwm := boltMeta(t, db)
			if err := os.Truncate(db, int64(hwm/2)*ps); err != nil {
				t.Fatal(err)
			}
		}, []string{"truncated", "sluice queue salvage --config"}},
		// The root page's type: bbolt panics "assertion failed: page N:
		// has unexpected type/flags" at start-up.
		{"flipped page header", func(t *testing.T, db string) {
			ps, root, _, _ := boltMeta(t, db)
			f, err := os.OpenFile(db, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte{0xFF}, int64(root)*ps+8); err != nil {
				t.Fatal(err)
			}
		}, []string{"type 0xff", "sluice queue salvage --config"}},
		{"0-byte file", func(t *testing.T, db string) {
			if err := os.Truncate(db, 0); err != nil {
				t.Fatal(err)
			}
		}, []string{"empty (0 bytes)", "--new-queue"}},
		{"missing file", func(t *testing.T, db string) {
			if err := os.Remove(db); err != nil {
				t.Fatal(err)
			}
		}, []string{"missing, but this data dir had a queue", "--new-queue"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, db := stoppedQueue(t, 3, freeAddr(t))
			tt.damage(t, db)
			out := runServeFails(t, "--config", cfg)
			if crashSigns.MatchString(out) {
				t.Fatalf("serve crashed:\n%s", out)
			}
			for _, w := range append(tt.want, db) {
				if !strings.Contains(out, w) {
					t.Errorf("serve said:\n%s\nwant %q in it", out, w)
				}
			}
			if strings.Contains(tt.want[1], "--new-queue") {
				// The operator's word: a new, empty queue.
				bin := buildTool(t, "sluice/cmd/sluice")
				smtp := smtpOf(t, cfg)
				cmd := exec.Command(bin, "serve", "--config", cfg, "--new-queue")
				logf, _ := os.Create(filepath.Join(t.TempDir(), "log"))
				cmd.Stdout, cmd.Stderr = logf, logf
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				waitListening(t, smtp, 15*time.Second)
				cmd.Process.Signal(syscall.SIGTERM)
				if err := cmd.Wait(); err != nil {
					t.Errorf("serve --new-queue: %v", err)
				}
			} else {
				// check names the damage too, without crashing.
				out, code := cli(t, "queue", "check", "--config", cfg)
				if code == 0 || crashSigns.MatchString(out) || !strings.Contains(out, "salvage") {
					t.Errorf("queue check: exit %d\n%s", code, out)
				}
			}
		})
	}
}

// smtpOf reads listen.smtp back from a test config.
func smtpOf(t *testing.T, cfg string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^smtp = "([^"]+)"`).FindStringSubmatch(readFile(t, cfg))
	if m == nil {
		t.Fatal("no smtp address in the config")
	}
	return m[1]
}

// msgLeafPages finds the leaf pages of the queue file that hold message
// envelopes (their first value is a message record), in the
// order of their keys (IDs, which sort by arrival).
func msgLeafPages(t *testing.T, db string) []int64 {
	t.Helper()
	ps, _, _, hwm := boltMeta(t, db)
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	first := map[int64]string{}
	var out []int64
	for id := uint64(2); id < hwm; id++ {
		p := b[int64(id)*ps : int64(id+1)*ps]
		if le.Uint64(p) != id || le.Uint16(p[8:]) != 0x02 || le.Uint16(p[10:]) == 0 {
			continue
		}
		pos, ks, vs := int(le.Uint32(p[16+4:])), int(le.Uint32(p[16+8:])), int(le.Uint32(p[16+12:]))
		// A message record: a 16-byte ID key and a binary record (its
		// version byte, 1) or, from earlier versions, JSON.
		if v := p[16+pos+ks:]; ks == 16 && vs > 0 && (v[0] == 1 || bytes.HasPrefix(v, []byte(`{"f":`))) {
			out = append(out, int64(id))
			first[int64(id)] = string(p[16+pos : 16+pos+ks])
		}
	}
	sort.Slice(out, func(i, j int) bool { return first[out[i]] < first[out[j]] })
	return out
}

// TestProofSalvage: with one page of message records destroyed, `queue
// check` names the damage, `queue salvage` copies every other message
// (envelope, states, body; a spooled body too) into a new queue file and
// names the lost ones, and the relay then delivers every salvaged
// message once.
func TestProofSalvage(t *testing.T) {
	const n = 120
	down := freeAddr(t)
	cfg, db := stoppedQueue(t, n, down)
	pages := msgLeafPages(t, db)
	if len(pages) < 3 {
		t.Fatalf("message records on %d pages: need more messages", len(pages))
	}
	ps, _, _, _ := boltMeta(t, db)
	f, err := os.OpenFile(db, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, int(ps)), pages[1]*ps); err != nil {
		t.Fatal(err)
	}
	f.Close()

	out, code := cli(t, "queue", "check", "--config", cfg)
	if code != 1 || !strings.Contains(out, "problem:") {
		t.Fatalf("queue check of a damaged file: exit %d\n%s", code, out)
	}
	// The strict export refuses the damaged file; the tolerant one (the
	// salvage path as a stream) carries what can be read and counts the
	// rest in its end record.
	if out, code := cli(t, "queue", "export", "--config", cfg, "--output", filepath.Join(t.TempDir(), "strict.jsonl")); code != 1 {
		t.Errorf("strict export of a damaged file: exit %d\n%s", code, out)
	}
	tolerant := filepath.Join(t.TempDir(), "tolerant.jsonl")
	if out, code := cli(t, "queue", "export", "--tolerant", "--config", cfg, "--output", tolerant); code != 0 {
		t.Fatalf("tolerant export: exit %d\n%s", code, out)
	}
	endRe := regexp.MustCompile(`\{"type":"end","messages":(\d+),.*"lost":(\d+)\}\n$`)
	em := endRe.FindStringSubmatch(readFile(t, tolerant))
	if em == nil {
		t.Fatalf("the tolerant stream has no end record")
	}
	out, code = cli(t, "queue", "salvage", "--config", cfg)
	if code != 0 {
		t.Fatalf("queue salvage: exit %d\n%s", code, out)
	}
	m := regexp.MustCompile(`salvaged (\d+) messages.*; (\d+) messages lost`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("salvage report:\n%s", out)
	}
	var saved, lost int
	fmt.Sscan(m[1], &saved)
	fmt.Sscan(m[2], &lost)
	t.Logf("salvaged %d, lost %d of %d", saved, lost, n)
	if saved+lost != n || lost == 0 || saved < n/2 {
		t.Fatalf("salvaged %d and lost %d of %d messages", saved, lost, n)
	}
	if em[1] != m[1] || em[2] != m[2] {
		t.Errorf("the tolerant export carried %s and lost %s messages, the salvage %d and %d", em[1], em[2], saved, lost)
	}
	if strings.Count(out, "lost: ") != lost {
		t.Errorf("the lost messages are not each named:\n%s", out)
	}
	if matches, _ := filepath.Glob(db + ".damaged-*"); len(matches) != 1 {
		t.Errorf("the damaged file was not kept aside: %v", matches)
	}
	if out, code := cli(t, "queue", "check", "--config", cfg); code != 0 {
		t.Errorf("queue check of the salvaged file: exit %d\n%s", code, out)
	}

	// The salvaged queue delivers: each salvaged message once.
	snk := startSinkAt(t, down)
	startRelay(t, cfg, smtpOf(t, cfg))
	eventually(t, 60*time.Second, "every salvaged message at the sink", func() bool { return len(snk.messageIDs(t)) == saved })
	for id, c := range snk.messageIDs(t) {
		if c != 1 {
			t.Errorf("%s delivered %d times", id, c)
		}
	}
	// While the daemon holds the file, the file commands refuse, saying why.
	if out, code := cli(t, "queue", "check", "--config", cfg); code != 1 || !strings.Contains(out, "stop it first") {
		t.Errorf("queue check with the daemon running: exit %d\n%s", code, out)
	}

	// The spooled body (message 1, on the first page of envelopes, which
	// is intact) arrives whole.
	if b := snk.body(t, "<q-001@proof.test>"); len(b) < 200<<10-4096 {
		t.Errorf("the spooled message arrived with %d bytes (%d copies; salvage said:\n%s)", len(b), snk.messageIDs(t)["<q-001@proof.test>"], out)
	}
}

// TestProofExportImport (issue 12 item 4): `queue export` of a stopped
// daemon's queue, then `queue import` into another data dir, carries
// every message, the suppression list and the runtime limits (`limits
// set`), as records of their own; an export of the imported queue is the
// same bytes; importing the stream again refuses every message, naming
// them, and exits 1; the other daemon then runs with the limits and the
// suppression.
func TestProofExportImport(t *testing.T) {
	dir, smtp := t.TempDir(), freeAddr(t)
	cfg := writeConfig(t, dir, smtp, routeTo("dest.test", freeAddr(t)))
	r := startRelay(t, cfg, smtp)
	for i := range 5 {
		if got := submitOnce(t, smtp, "user@dest.test", fmt.Sprintf("x-%d@proof.test", i), 512); !strings.HasPrefix(got, "250") {
			t.Fatalf("submission %d: %q", i, got)
		}
	}
	if out, code := cli(t, "limits", "set", "dest.test", "--max-concurrency", "2", "--rate", "3/s", "--config", cfg); code != 0 {
		t.Fatalf("limits set: exit %d\n%s", code, out)
	}
	if out, code := cli(t, "suppress", "add", "gone@dest.test", "--reason", "moved away", "--config", cfg); code != 0 {
		t.Fatalf("suppress add: exit %d\n%s", code, out)
	}
	r.stop(t)

	stream := filepath.Join(t.TempDir(), "queue.jsonl")
	if out, code := cli(t, "queue", "export", "--config", cfg, "--output", stream); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, out)
	}
	text := readFile(t, stream)
	for _, want := range []string{
		`{"type":"limits","destination":"dest.test","max_concurrency":2,"rate":3}` + "\n",
		`{"type":"suppression","addr":"gone@dest.test","reason":"moved away","at":"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the stream has no %s:\n%.2000s", want, text)
		}
	}
	otherDir := t.TempDir()
	otherSMTP := freeAddr(t)
	otherCfg := writeConfig(t, otherDir, otherSMTP, routeTo("dest.test", freeAddr(t)))
	other := filepath.Join(otherDir, "data", "queue.db")
	if out, code := cli(t, "queue", "import", "--config", otherCfg, "--input", stream); code != 0 || !strings.Contains(out, "imported 5 messages, 1 suppressions, 1 destination states, 1 runtime limits") {
		t.Fatalf("import: exit %d\n%s", code, out)
	}
	again := filepath.Join(t.TempDir(), "again.jsonl")
	if out, code := cli(t, "queue", "export", "--file", other, "--output", again); code != 0 {
		t.Fatalf("export of the imported queue: exit %d\n%s", code, out)
	}
	if b := readFile(t, again); b != text {
		t.Errorf("export → import → export changed the stream:\n%s\nthen\n%s", text, b)
	}
	// The same stream again: every message is refused, by ID, exit 1.
	out, code := cli(t, "queue", "import", "--config", otherCfg, "--input", stream)
	if code != 1 || !strings.Contains(out, "5 messages refused: their IDs are already in the queue") || strings.Count(out, "refused: ") != 6 {
		t.Errorf("second import: exit %d\n%s", code, out)
	}
	if out, code := cli(t, "queue", "check", "--file", other); code != 0 || !strings.Contains(out, "5 messages") {
		t.Errorf("check of the imported queue: exit %d\n%s", code, out)
	}
	// The offline compaction (issue 10) keeps every message.
	if out, code := cli(t, "queue", "compact", "--file", other); code != 0 || !strings.Contains(out, "MB, was") {
		t.Fatalf("compact: exit %d\n%s", code, out)
	}
	if out, code := cli(t, "queue", "check", "--file", other); code != 0 || !strings.Contains(out, "5 messages") {
		t.Errorf("check of the compacted queue: exit %d\n%s", code, out)
	}

	// The other daemon runs with the limits and the suppression list.
	startRelay(t, otherCfg, otherSMTP)
	var doms admin.Domains
	cliJSON(t, &doms, "domains", "--config", otherCfg)
	if d, ok := findDest(doms, "dest.test"); !ok || d.MaxConcurrency != 2 || d.MaxRate != 3 {
		t.Errorf("dest.test on the other daemon: %+v (found %v), want max concurrency 2, rate 3", d, ok)
	}
	if out, code := cli(t, "suppress", "list", "--config", otherCfg); code != 0 || !strings.Contains(out, "gone@dest.test") {
		t.Errorf("suppress list on the other daemon: exit %d\n%s", code, out)
	}
}

// TestProofMoveQueue (issue 12 item 4): 10,000 queued messages move from
// one data dir to another (`queue export`, `queue import`) and the
// daemon on the new one delivers every one of them, once. The source
// queue is filled offline from a generated stream (internal/queuegen),
// as bench/scale does: SMTP would take most of the test's time.
func TestProofMoveQueue(t *testing.T) {
	const n = 10_000
	bin := buildTool(t, "sluice/cmd/sluice")
	mx := startFakeMX(t, fakemx.Options{})
	srcCfg := writeConfig(t, t.TempDir(), freeAddr(t), routeTo("dest.test", mx.Addr()))
	start := time.Now()
	cmd := exec.Command(bin, "queue", "import", "--config", srcCfg)
	pw, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	gerr := queuegen.Write(pw, queuegen.Options{N: n, Size: 600, To: "user%d@dest.test", Wrap: 500, From: "app@src.test",
		Now: time.Now(), Spread: time.Hour, LastReply: "421 4.3.2 try again later"})
	pw.Close()
	if err := cmd.Wait(); err != nil || gerr != nil {
		t.Fatalf("filling the source queue: %v %v\n%s", gerr, err, out.String())
	}
	filled := time.Since(start)

	stream := filepath.Join(t.TempDir(), "queue.jsonl")
	if out, code := cli(t, "queue", "export", "--config", srcCfg, "--output", stream); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, out)
	}
	if end := fmt.Sprintf(`{"type":"end","messages":%d,`, n); !strings.Contains(readFile(t, stream), end) {
		t.Fatalf("the stream does not end with %s", end)
	}
	dstSMTP := freeAddr(t)
	dstCfg := writeConfig(t, t.TempDir(), dstSMTP, routeTo("dest.test", mx.Addr())+"\n[[policy.destination]]\nmatch = \"dest.test\"\nmax_concurrency = 20\n")
	if out, code := cli(t, "queue", "import", "--config", dstCfg, "--input", stream); code != 0 || !strings.Contains(out, fmt.Sprintf("imported %d messages", n)) {
		t.Fatalf("import: exit %d\n%s", code, out)
	}
	moved := time.Since(start) - filled
	startRelay(t, dstCfg, dstSMTP)
	eventually(t, 60*time.Second, "every moved message at the receiver", func() bool { return mx.Stats().Delivered >= n })
	ids := mx.MessageIDs()
	if len(ids) != n {
		t.Errorf("%d distinct messages delivered, want %d", len(ids), n)
	}
	for id, c := range ids {
		if c != 1 {
			t.Errorf("%s delivered %d times", id, c)
		}
	}
	t.Logf("filled %d in %v, moved in %v, delivered in %v", n, filled.Round(time.Millisecond), moved.Round(time.Millisecond),
		(time.Since(start) - filled - moved).Round(time.Millisecond))
}
