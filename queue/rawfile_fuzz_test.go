package queue

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// smallQueueFile returns the bytes of a real queue file with a few
// messages, the seed of the damaged-file fuzzers.
func smallQueueFile(f *testing.F) []byte {
	f.Helper()
	q, _, o := openTest(f, nil)
	for range 30 {
		enqueue(f, q, "a@x.test", "b@y.test")
	}
	q.Suppress("gone@x.test", "550")
	q.Close()
	b, err := os.ReadFile(o.Path)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzDamagedFile: whatever the bytes of the queue file, the checks and
// the tolerant export never panic, never hang, and what they export
// imports cleanly.
func FuzzDamagedFile(f *testing.F) {
	seed := smallQueueFile(f)
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	flipped := bytes.Clone(seed)
	flipped[3*4096+8] ^= 0xff
	f.Add(flipped)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "queue.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = CheckFile(path)
		_, _ = CheckPath(path)
		var stream bytes.Buffer
		if _, err := Export(&stream, ExportOptions{Path: path, Tolerant: true}); err != nil {
			return
		}
		q, _, _ := openTest(t, nil)
		if _, err := q.Import(&stream); err != nil {
			t.Fatalf("import of a tolerant export: %v", err)
		}
	})
}

// FuzzImport: an arbitrary stream is refused or imported, never a panic,
// and the queue stays consistent.
func FuzzImport(f *testing.F) {
	seed := smallQueueFile(f)
	dir := f.TempDir()
	path := filepath.Join(dir, "queue.db")
	os.WriteFile(path, seed, 0o600)
	var stream bytes.Buffer
	if _, err := Export(&stream, ExportOptions{Path: path}); err != nil {
		f.Fatal(err)
	}
	f.Add(stream.String())
	lines := strings.SplitAfter(stream.String(), "\n")
	f.Add(lines[0] + lines[1])
	f.Add(lines[0] + `{"type":"message","id":"0000000000000000","recipients":[{"addr":"a@b","state":"held"}],"size":1,"body":"eA=="}` + "\n" + `{"type":"end","messages":1}` + "\n")
	f.Add(lines[0] + `{"type":"destination","name":"x.test","state":"eyJrIjoxfQ=="}` + "\n" + `{"type":"limits","destination":"x.test","max_concurrency":3,"rate":1.5}` + "\n" +
		`{"type":"limits","destination":"y.test","max_concurrency":1,"rate":0}` + "\n" + `{"type":"end","messages":0}` + "\n")
	f.Fuzz(func(t *testing.T, in string) {
		q, _, _ := openTest(t, nil)
		_, _ = q.ImportWith(io.LimitReader(strings.NewReader(in), 1<<20), ImportOptions{Limits: fakeLimits{}})
		checkInvariants(t, q)
	})
}

// FuzzSaveBackup: an arbitrary backup stream is refused or saved, never a
// panic; whatever is refused leaves the target as it was, and whatever is
// saved passes the check or is kept aside as damaged.
func FuzzSaveBackup(f *testing.F) {
	q, _, _ := openTest(f, func(o *Options) { o.InlineMax = 64 })
	enqueue(f, q, "a@x.test")
	sp := q.NewSpool()
	sp.Write(bytes.Repeat([]byte("b"), 200))
	if _, err := q.Enqueue(context.Background(), NewMessage{From: "s@x.test", Rcpts: []string{"c@y.test"}, Spool: sp}); err != nil {
		f.Fatal(err)
	}
	var whole bytes.Buffer
	if _, err := q.Backup(&whole); err != nil {
		f.Fatal(err)
	}
	f.Add(whole.Bytes())
	f.Add(whole.Bytes()[:whole.Len()-1024])
	f.Fuzz(func(t *testing.T, in []byte) {
		dst := filepath.Join(t.TempDir(), "queue.db")
		os.WriteFile(dst, []byte("before"), 0o600)
		s, err := SaveBackup(bytes.NewReader(in), dst)
		b, _ := os.ReadFile(dst)
		switch {
		case err != nil || len(s.Problems) > 0:
			if string(b) != "before" {
				t.Fatalf("a refused or damaged stream (%v, %d problems) replaced the target", err, len(s.Problems))
			}
		default:
			if rep, err := CheckPath(dst); err != nil || len(rep.Problems) > 0 {
				t.Fatalf("a saved backup fails the check: %v %v", rep.Problems, err)
			}
		}
	})
}

// TestDamagedFileMutations is FuzzDamagedFile over a fixed set of random
// damages (seeded: the same every run): bytes overwritten anywhere, and
// truncations. Nothing may panic, and a tolerant export always imports.
// 60 damages by default, 3,000 with SLUICE_LONG=1.
func TestDamagedFileMutations(t *testing.T) {
	t.Parallel()
	q, _, o := openTest(t, func(o *Options) { o.NoSync = true })
	for range 60 {
		enqueue(t, q, "a@x.test", "b@y.test")
	}
	q.Suppress("gone@x.test", "550")
	q.Close()
	seed, err := os.ReadFile(o.Path)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	dir := t.TempDir()
	n := 60
	if os.Getenv("SLUICE_LONG") != "" {
		n = 3000 // SLUICE_LONG=1 go test ./queue -run TestDamagedFileMutations
	}
	for i := range n {
		data := bytes.Clone(seed)
		if i%10 == 9 {
			data = data[:r.IntN(len(data))]
		} else {
			for range 1 + r.IntN(16) {
				data[r.IntN(len(data))] = byte(r.IntN(256))
			}
		}
		path := filepath.Join(dir, fmt.Sprintf("q%d.db", i))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = CheckFile(path)
		_, _ = CheckPath(path)
		var stream bytes.Buffer
		if _, err := Export(&stream, ExportOptions{Path: path, Tolerant: true}); err != nil {
			continue
		}
		nq, err := Open(testOptions(filepath.Join(dir, fmt.Sprintf("n%d", i), "queue.db")))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nq.Import(&stream); err != nil {
			t.Errorf("mutation %d: import of a tolerant export: %v", i, err)
		}
		checkInvariants(t, nq)
		nq.Close()
	}
}
