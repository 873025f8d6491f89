package queue

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// damagedQueue writes a queue with a few messages at a fresh path, closes
// it, lets damage change the file, and returns the path.
func damagedQueue(t *testing.T, damage func(t *testing.T, path string, m rawMeta)) string {
	t.Helper()
	q, _, o := openTest(t, nil)
	for range 20 {
		enqueue(t, q, "a@x.test", "b@y.test")
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	rf, err := openRaw(o.Path, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := rf.meta
	rf.Close()
	damage(t, o.Path, m)
	return o.Path
}

// flipPageType overwrites the type of page id.
func flipPageType(t *testing.T, path string, m rawMeta, id uint64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{0x7f, 0x00}, int64(id)*int64(m.pageSize)+8); err != nil {
		t.Fatal(err)
	}
}

// TestOpenRefusesDamagedFiles (issue 9 item 9): a damaged, empty or lost
// queue file is a *FileError naming the file and the damage, found
// before bbolt maps the file (which would panic or fault), never an
// empty queue started without a word.
func TestOpenRefusesDamagedFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		path   func(t *testing.T) string
		kind   FileKind
		detail string
	}{
		{"truncated", func(t *testing.T) string {
			return damagedQueue(t, func(t *testing.T, path string, m rawMeta) {
				if err := os.Truncate(path, int64(m.hwm-1)*int64(m.pageSize)); err != nil {
					t.Fatal(err)
				}
			})
		}, FileDamaged, "truncated"},
		{"freelist page header", func(t *testing.T) string {
			return damagedQueue(t, func(t *testing.T, path string, m rawMeta) { flipPageType(t, path, m, m.freelist) })
		}, FileDamaged, "type 0x7f"},
		{"root page header", func(t *testing.T) string {
			return damagedQueue(t, func(t *testing.T, path string, m rawMeta) { flipPageType(t, path, m, m.root) })
		}, FileDamaged, "type 0x7f"},
		{"both meta pages", func(t *testing.T) string {
			return damagedQueue(t, func(t *testing.T, path string, m rawMeta) {
				f, _ := os.OpenFile(path, os.O_RDWR, 0)
				defer f.Close()
				f.WriteAt([]byte{1, 2, 3, 4}, pageHeaderSize)
				f.WriteAt([]byte{1, 2, 3, 4}, int64(m.pageSize)+pageHeaderSize)
			})
		}, FileDamaged, "no valid meta page"},
		{"empty file", func(t *testing.T) string {
			return damagedQueue(t, func(t *testing.T, path string, m rawMeta) {
				if err := os.Truncate(path, 0); err != nil {
					t.Fatal(err)
				}
			})
		}, FileEmpty, "empty (0 bytes)"},
		{"missing file of a data dir that had a queue", func(t *testing.T) string {
			return damagedQueue(t, func(t *testing.T, path string, m rawMeta) {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
			})
		}, FileMissing, "missing, but this data dir had a queue"},
		{"not a bbolt file", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "queue.db")
			if err := os.WriteFile(p, []byte(strings.Repeat("garbage\n", 2000)), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, FileDamaged, "no valid meta page"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := tt.path(t)
			o := testOptions(path)
			o.LockTimeout = time.Millisecond
			q, err := Open(o)
			if err == nil {
				q.Close()
				t.Fatal("Open succeeded")
			}
			var fe *FileError
			if !errors.As(err, &fe) || fe.Kind != tt.kind || !errors.Is(err, ErrDamaged) {
				t.Fatalf("Open = %v (%T), want a FileError of kind %d", err, err, tt.kind)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("Open = %q, want the path and %q", err, tt.detail)
			}
			if tt.kind != FileDamaged {
				// The operator's explicit word starts a new queue.
				o.NewQueue = true
				q, err := Open(o)
				if err != nil {
					t.Fatalf("Open with NewQueue: %v", err)
				}
				if c, _ := q.Counts(); c[StateQueued] != 0 {
					t.Errorf("new queue not empty: %v", c)
				}
				q.Close()
			} else if _, err := NeedsCompaction(path, 0, 0.5); !errors.As(err, &fe) {
				t.Errorf("NeedsCompaction on a damaged file = %v, want the FileError", err)
			}
		})
	}
}

// TestMarkerWrittenOnce: the first Open writes the marker; a fresh data
// dir (no marker, no file) starts a queue.
func TestMarkerWrittenOnce(t *testing.T) {
	t.Parallel()
	q, _, o := openTest(t, nil)
	b, err := os.ReadFile(MarkerPath(o.Path))
	if err != nil || !strings.Contains(string(b), "queue created") {
		t.Fatalf("marker: %q, %v", b, err)
	}
	q.Close()
	q, err = Open(o)
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	if b2, _ := os.ReadFile(MarkerPath(o.Path)); string(b2) != string(b) {
		t.Errorf("marker rewritten: %q", b2)
	}
}

// TestCheckPath: the full offline check passes a sound file and names
// damage deeper than the O(1) checks see: a bad leaf page, a lost body
// file.
func TestCheckPath(t *testing.T) {
	t.Parallel()
	q, _, o := openTest(t, func(o *Options) { o.InlineMax = 1024 })
	for range 300 {
		enqueue(t, q, "a@x.test")
	}
	sp := q.NewSpool()
	sp.Write([]byte(strings.Repeat("x", 4096)))
	big, err := q.Enqueue(t.Context(), NewMessage{From: "s@example.org", Rcpts: []string{"b@y.test"}, Spool: sp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CheckPath(o.Path); !errors.Is(err, ErrLocked) {
		t.Errorf("CheckPath of an open queue = %v, want ErrLocked", err)
	}
	q.Close()
	rep, err := CheckPath(o.Path)
	if err != nil || len(rep.Problems) != 0 || rep.Messages != 301 {
		t.Fatalf("sound file: %+v, %v", rep, err)
	}
	if err := os.Remove(filepath.Join(filepath.Dir(o.Path), "spool", big)); err != nil {
		t.Fatal(err)
	}
	rep, err = CheckPath(o.Path)
	if err != nil || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], big) {
		t.Errorf("lost body file: %+v, %v", rep, err)
	}
	rf, err := openRaw(o.Path, 0)
	if err != nil {
		t.Fatal(err)
	}
	mb, _, _ := rf.bucket(bktMsgs)
	rootPage, _ := rf.page(mb.root, branchPageFlag)
	_, es, _ := rf.elems(mb.root, rootPage)
	m := rf.meta
	rf.Close()
	flipPageType(t, o.Path, m, es[1].child)
	rep, err = CheckPath(o.Path)
	if err != nil || len(rep.Problems) == 0 || !strings.Contains(strings.Join(rep.Problems, "\n"), "type 0x7f") {
		t.Errorf("damaged leaf: %+v, %v", rep, err)
	}
}
