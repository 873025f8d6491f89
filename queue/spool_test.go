package queue

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// spoolFiles lists the names in the spool directory.
func spoolFiles(t testing.TB, q *Queue) []string {
	t.Helper()
	ents, err := os.ReadDir(q.spoolDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// writeSpool fills a new Spool with body in chunks, as the inbound side
// does with DATA.
func writeSpool(t testing.TB, q *Queue, body []byte) *Spool {
	t.Helper()
	s := q.NewSpool()
	for len(body) > 0 {
		n := min(len(body), 1000)
		if _, err := s.Write(body[:n]); err != nil {
			t.Fatal(err)
		}
		body = body[n:]
	}
	return s
}

func readBody(t testing.TB, q *Queue, id string) ([]byte, *Body) {
	t.Helper()
	b, err := q.OpenBody(id)
	if err != nil {
		t.Fatalf("OpenBody(%s): %v", id, err)
	}
	defer b.Close()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	return got, b
}

func TestSpoolInlineOrFile(t *testing.T) {
	t.Parallel()
	const max = 4096
	prefix := []byte("DKIM-Signature: v=1\r\n")
	tests := []struct {
		name    string
		size    int
		spooled bool
		eight   bool
	}{
		{"empty", 0, false, false},
		{"small", 100, false, false},
		{"at the limit", max, false, true},
		{"one byte over", max + 1, true, false},
		{"large 8-bit", 20 * max, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, _, _ := openTest(t, func(o *Options) { o.InlineMax = max })
			body := bytes.Repeat([]byte("line of text\r\n"), tt.size/14+1)[:tt.size]
			if tt.eight {
				body[len(body)/2] = 0xE9
			}
			s := writeSpool(t, q, body)
			defer s.Discard()
			if s.Spilled() != tt.spooled || s.Len() != int64(len(body)) {
				t.Fatalf("Spilled = %v, Len = %d", s.Spilled(), s.Len())
			}
			// The second pass (DKIM) sees what was written.
			r, err := s.Open()
			if err != nil {
				t.Fatal(err)
			}
			again, _ := io.ReadAll(r)
			r.Close()
			if !bytes.Equal(again, body) {
				t.Fatalf("Spool.Open read %d bytes, want %d", len(again), len(body))
			}
			id, err := q.Enqueue(context.Background(), NewMessage{Rcpts: []string{"a@x.test"}, Body: prefix, Spool: s})
			if err != nil {
				t.Fatal(err)
			}
			got, b := readBody(t, q, id)
			want := append(slices.Clone(prefix), body...)
			if !bytes.Equal(got, want) || b.Size() != int64(len(want)) || b.Has8Bit() != tt.eight {
				t.Errorf("body = %d bytes (size %d, 8bit %v), want %d (8bit %v)", len(got), b.Size(), b.Has8Bit(), len(want), tt.eight)
			}
			m, _ := q.Get(id)
			if m.Size != int64(len(want)) {
				t.Errorf("Size = %d, want %d", m.Size, len(want))
			}
			files := spoolFiles(t, q)
			if tt.spooled && !slices.Equal(files, []string{id}) || !tt.spooled && len(files) != 0 {
				t.Errorf("spool dir = %v", files)
			}
			checkInvariants(t, q)
		})
	}
}

// TestSpoolDurabilityOrder checks that the body file is complete under
// its final name before the transaction that references it commits: a
// "250" must never point at a missing or partial file.
func TestSpoolDurabilityOrder(t *testing.T) {
	t.Parallel()
	q, _, _ := openTest(t, func(o *Options) { o.InlineMax = 1024 })
	body := bytes.Repeat([]byte("x"), 10000)
	var checked bool
	q.testHookCommit = func(id string) error {
		checked = true
		got, err := os.ReadFile(filepath.Join(q.spoolDir, id))
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("at commit: file %s = %d bytes, %v", id, len(got), err)
		}
		for _, f := range spoolFiles(t, q) {
			if strings.HasPrefix(f, spoolTempPrefix) {
				t.Errorf("at commit: temporary file %s still there", f)
			}
		}
		return nil
	}
	s := writeSpool(t, q, body)
	defer s.Discard()
	if _, err := q.Enqueue(context.Background(), NewMessage{Rcpts: []string{"a@x.test"}, Spool: s}); err != nil {
		t.Fatal(err)
	}
	if !checked {
		t.Fatal("commit hook never ran")
	}
}

// TestSpoolFileRemovedWhenFinal: the body file goes with the commit that
// makes the last recipient final (sent, bounced, expired) or deletes
// the message, not before.
func TestSpoolFileRemovedWhenFinal(t *testing.T) {
	t.Parallel()
	for _, final := range []string{"sent", "bounced", "expired", "deleted"} {
		t.Run(final, func(t *testing.T) {
			t.Parallel()
			q, _, _ := openTest(t, func(o *Options) { o.InlineMax = 1024 })
			s := writeSpool(t, q, bytes.Repeat([]byte("y"), 5000))
			defer s.Discard()
			id, err := q.Enqueue(context.Background(), NewMessage{Rcpts: []string{"a@x.test", "b@y.test"}, Spool: s})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(q.spoolDir, id)
			finish := func(rcpt int) {
				if final == "deleted" {
					if _, err := q.Delete([]string{id}); err != nil {
						t.Fatal(err)
					}
					return
				}
				update(t, q, Update{ID: id, Rcpt: rcpt, State: State(final)})
			}
			if final != "deleted" {
				finish(0)
				if _, err := os.Stat(path); err != nil {
					t.Fatalf("file gone while recipient 1 is open: %v", err)
				}
				if got, _ := readBody(t, q, id); len(got) != 5000 {
					t.Fatalf("body = %d bytes", len(got))
				}
			}
			finish(1)
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("file still there after the final commit: %v", err)
			}
			if _, err := q.OpenBody(id); !errors.Is(err, ErrNotFound) {
				t.Errorf("OpenBody after final = %v", err)
			}
			checkInvariants(t, q)
		})
	}
}

// TestSpoolOpenBodySurvivesRemoval: a reader opened before the message
// became final reads the whole body (the delivery in flight finishes).
func TestSpoolOpenBodySurvivesRemoval(t *testing.T) {
	t.Parallel()
	q, _, _ := openTest(t, func(o *Options) { o.InlineMax = 1024 })
	body := bytes.Repeat([]byte("z"), 50000)
	s := writeSpool(t, q, body)
	defer s.Discard()
	id, err := q.Enqueue(context.Background(), NewMessage{Rcpts: []string{"a@x.test"}, Spool: s})
	if err != nil {
		t.Fatal(err)
	}
	b, err := q.OpenBody(id)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := q.Delete([]string{id}); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("read after removal = %d bytes, %v", len(got), err)
	}
}

// TestSpoolCrashSweep builds what a crash can leave behind and reopens:
// the sweep keeps exactly the files of open messages.
func TestSpoolCrashSweep(t *testing.T) {
	t.Parallel()
	q, _, o := openTest(t, func(o *Options) { o.InlineMax = 1024 })
	ctx := context.Background()
	big := bytes.Repeat([]byte("b"), 4000)

	// An open message: its file stays.
	s1 := writeSpool(t, q, big)
	open, err := q.Enqueue(ctx, NewMessage{Rcpts: []string{"a@x.test"}, Spool: s1})
	if err != nil {
		t.Fatal(err)
	}
	// A crash between the file and the commit: renamed, never committed.
	s2 := writeSpool(t, q, big)
	orphan := q.ids.next(q.now())
	if err := s2.publish(orphan); err != nil {
		t.Fatal(err)
	}
	// A crash while receiving: a temporary file.
	s3 := writeSpool(t, q, big)
	tmp := filepath.Base(s3.f.Name())
	// A crash after the final commit, before the file was removed.
	s4 := writeSpool(t, q, big)
	done, err := q.Enqueue(ctx, NewMessage{Rcpts: []string{"a@x.test"}, Spool: s4})
	if err != nil {
		t.Fatal(err)
	}
	update(t, q, Update{ID: done, State: StateSent})
	if err := os.WriteFile(filepath.Join(q.spoolDir, done), big, 0o600); err != nil {
		t.Fatal(err)
	}
	// Not ours: left alone.
	if err := os.WriteFile(filepath.Join(q.spoolDir, "README"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	before := spoolFiles(t, q)
	for _, want := range []string{open, orphan, tmp, done, "README"} {
		if !slices.Contains(before, want) {
			t.Fatalf("setup: %s missing from %v", want, before)
		}
	}
	s3.f.Close() // the "crashed" process's descriptor
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	after := spoolFiles(t, q2)
	slices.Sort(after)
	want := []string{open, "README"}
	slices.Sort(want)
	if !slices.Equal(after, want) {
		t.Errorf("after sweep: %v, want %v", after, want)
	}
	if got, _ := readBody(t, q2, open); !bytes.Equal(got, big) {
		t.Errorf("open message body = %d bytes", len(got))
	}
	checkInvariants(t, q2)
}

// TestSpoolFreshQueueDoesNotSweep: a queue file created now (a salvage
// copy next to the old one) must not delete the old file's bodies.
func TestSpoolFreshQueueDoesNotSweep(t *testing.T) {
	t.Parallel()
	q, _, o := openTest(t, func(o *Options) { o.InlineMax = 1024 })
	s := writeSpool(t, q, bytes.Repeat([]byte("b"), 4000))
	id, err := q.Enqueue(context.Background(), NewMessage{Rcpts: []string{"a@x.test"}, Spool: s})
	if err != nil {
		t.Fatal(err)
	}
	fresh := o
	fresh.Path = filepath.Join(filepath.Dir(o.Path), "salvage.db")
	q2, err := Open(fresh)
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	if _, err := os.Stat(filepath.Join(q.spoolDir, id)); err != nil {
		t.Errorf("a fresh queue file swept another file's body: %v", err)
	}
}

// TestSpoolFailedCommitRemovesFile: when the commit that would reference
// the file fails and the record is not there, the file goes at once.
func TestSpoolFailedCommitRemovesFile(t *testing.T) {
	t.Parallel()
	q, _, _ := openTest(t, func(o *Options) { o.InlineMax = 1024 })
	boom := errors.New("boom")
	q.testHookCommit = func(string) error { return boom }
	s := writeSpool(t, q, bytes.Repeat([]byte("b"), 4000))
	defer s.Discard()
	if _, err := q.Enqueue(context.Background(), NewMessage{Rcpts: []string{"a@x.test"}, Spool: s}); !errors.Is(err, boom) {
		t.Fatalf("Enqueue = %v, want boom", err)
	}
	if files := spoolFiles(t, q); len(files) != 0 {
		t.Errorf("spool dir after a failed commit: %v", files)
	}
}

func TestSpoolDiscard(t *testing.T) {
	t.Parallel()
	q, _, _ := openTest(t, func(o *Options) { o.InlineMax = 1024 })
	s := writeSpool(t, q, bytes.Repeat([]byte("b"), 4000))
	if !s.Spilled() {
		t.Fatal("not spilled")
	}
	s.Discard()
	s.Discard()
	if files := spoolFiles(t, q); len(files) != 0 {
		t.Errorf("spool dir after Discard: %v", files)
	}
	if _, err := s.Write([]byte("x")); err == nil {
		t.Error("Write after Discard succeeded")
	}
}

func TestCheckReportsMissingSpoolFile(t *testing.T) {
	t.Parallel()
	q, _, _ := openTest(t, func(o *Options) { o.InlineMax = 1024 })
	s := writeSpool(t, q, bytes.Repeat([]byte("b"), 4000))
	id, err := q.Enqueue(context.Background(), NewMessage{Rcpts: []string{"a@x.test"}, Spool: s})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Check(); err != nil {
		t.Fatalf("Check = %v", err)
	}
	if err := os.Remove(filepath.Join(q.spoolDir, id)); err != nil {
		t.Fatal(err)
	}
	if err := q.Check(); err == nil || !strings.Contains(err.Error(), id) {
		t.Errorf("Check = %v, want the missing file named", err)
	}
	if _, err := q.OpenBody(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenBody = %v", err)
	}
}
