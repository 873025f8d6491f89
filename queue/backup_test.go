package queue

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// gateWriter passes writes through to w, but holds the first one until
// open is closed: the backup's read transaction stays open meanwhile.
type gateWriter struct {
	w       io.Writer
	started chan struct{}
	open    chan struct{}
	first   bool
}

func (g *gateWriter) Write(p []byte) (int, error) {
	if !g.first {
		g.first = true
		close(g.started)
		<-g.open
	}
	return g.w.Write(p)
}

// TestBackupIsHotAndConsistent (issue 12 item 5): while a backup holds
// its read transaction, the queue keeps committing (a new message, a
// delivery); the copy is the queue as of the backup's start, complete
// with the body file of a spooled message delivered meanwhile (its
// removal waits for the backup), passes CheckPath and opens as a queue
// that serves its mail; after the backup, the delivered body is removed.
func TestBackupIsHotAndConsistent(t *testing.T) {
	t.Parallel()
	q, c, o := openTest(t, func(o *Options) { o.InlineMax = 1024 })
	ctx := context.Background()
	big := bytes.Repeat([]byte("0123456789abcdef"), 300)
	sp := q.NewSpool()
	sp.Write(big)
	spooled, err := q.Enqueue(ctx, NewMessage{From: "s@example.org", Rcpts: []string{"big@x.test"}, Spool: sp})
	if err != nil {
		t.Fatal(err)
	}
	small := enqueue(t, q, "a@x.test", "b@y.test")
	c.Advance(time.Second)
	if items, err := q.Lease(c.Now(), 10); err != nil || len(items) != 3 {
		t.Fatalf("Lease = %v, %v", items, err)
	}

	pr, pw := io.Pipe()
	g := &gateWriter{w: pw, started: make(chan struct{}), open: make(chan struct{})}
	// Whatever fails, the backup goes on before the queue is closed.
	release := sync.OnceFunc(func() { close(g.open) })
	defer release()
	backupDone := make(chan error, 1)
	go func() {
		_, err := q.Backup(g)
		pw.CloseWithError(err)
		backupDone <- err
	}()
	dst := filepath.Join(t.TempDir(), "backup", "queue.db")
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		t.Fatal(err)
	}
	saved := make(chan SavedBackup, 1)
	saveErr := make(chan error, 1)
	go func() {
		s, err := SaveBackup(pr, dst)
		pr.CloseWithError(errors.New("stop"))
		saved <- s
		saveErr <- err
	}()
	<-g.started

	// The backup's transaction is open: commits go on.
	committed := make(chan string, 1)
	go func() {
		update(t, q, Update{ID: spooled, Rcpt: 0, State: StateSent})
		committed <- enqueue(t, q, "later@x.test")
	}()
	var later string
	select {
	case later = <-committed:
	case <-time.After(20 * time.Second):
		release()
		t.Fatal("a commit waited for the backup's read transaction")
	}
	if _, err := os.Stat(q.spoolPath(spooled)); err != nil {
		t.Fatalf("the body of %s was removed while the backup may need it: %v", spooled, err)
	}
	if _, err := q.Backup(io.Discard); !errors.Is(err, ErrBackupRunning) {
		t.Errorf("a second backup at once = %v, want ErrBackupRunning", err)
	}
	release()
	if err := <-backupDone; err != nil {
		t.Fatal(err)
	}
	s, err := <-saved, <-saveErr
	if err != nil {
		t.Fatal(err)
	}
	if s.Path != dst || len(s.Problems) != 0 || s.Manifest.Messages != 2 || s.Manifest.Bodies != 1 || s.Manifest.BodyBytes != int64(len(big)) {
		t.Fatalf("saved %+v", s)
	}
	if _, err := os.Stat(q.spoolPath(spooled)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the delivered body is still there after the backup: %v", err)
	}
	if m, _ := filepath.Glob(dst + ".partial-*"); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}

	// The copy: the queue as the backup began, a queue that serves.
	bo := o
	bo.Path, bo.SpoolDir = dst, ""
	b, err := Open(bo)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	checkInvariants(t, b)
	if _, err := b.Get(later); !errors.Is(err, ErrNotFound) {
		t.Errorf("the message enqueued during the backup is in the copy: %v", err)
	}
	m, err := b.Get(spooled)
	if err != nil || m.Recipients[0].State != StateQueued {
		t.Fatalf("the spooled message in the copy: %+v, %v (want its in-flight recipient due again)", m, err)
	}
	if body, err := bodyOf(b, spooled); err != nil || !bytes.Equal(body, big) {
		t.Errorf("the spooled body in the copy: %d bytes, %v", len(body), err)
	}
	if body, err := bodyOf(b, small); err != nil || !strings.Contains(string(body), "hello") {
		t.Errorf("the inline body in the copy: %q, %v", body, err)
	}
}

// TestSaveBackupRefusesBadStreams: a stream cut short, one with an entry
// outside the layout, or with a manifest that disagrees, leaves the
// target as it was.
func TestSaveBackupRefusesBadStreams(t *testing.T) {
	t.Parallel()
	q, _, _ := openTest(t, nil)
	enqueue(t, q, "a@x.test")
	var whole bytes.Buffer
	if _, err := q.Backup(&whole); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "before its manifest"},
		{"cut short", whole.Bytes()[:whole.Len()/2], "backup stream"},
		{"no manifest", whole.Bytes()[:bytes.Index(whole.Bytes(), []byte(BackupManifestName))-200], "backup stream"},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		dst := filepath.Join(dir, "queue.db")
		if err := os.WriteFile(dst, []byte("the previous backup"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := SaveBackup(bytes.NewReader(tt.in), dst)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
		if b, _ := os.ReadFile(dst); string(b) != "the previous backup" {
			t.Errorf("%s: the previous file was replaced", tt.name)
		}
		if m, _ := filepath.Glob(dst + ".partial-*"); len(m) != 0 {
			t.Errorf("%s: temporary files left: %v", tt.name, m)
		}
	}
}
