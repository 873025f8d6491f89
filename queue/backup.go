package queue

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// The backup stream (`sluice queue backup FILE`, POST /v1/queue/backup)
// is a tar archive (POSIX pax) of a consistent copy of the queue, taken
// while the daemon runs:
//
//	queue.db       the queue file as of one read transaction (Tx.WriteTo)
//	spool/<id>     the body file of each open message of that copy whose
//	               body is spooled
//	backup.json    the manifest (BackupManifest), always last: a stream
//	               without it was cut short
//
// Together they are a data dir: queue.db with spool/ next to it is what
// Open, CheckPath and Export read.
const (
	BackupQueueFile    = "queue.db"
	BackupSpoolPrefix  = "spool/"
	BackupManifestName = "backup.json"
	backupFormat       = "sluice-backup"
	backupVersion      = 1
)

// ErrBackupRunning is returned while another backup runs: one at a time,
// each holds a read transaction for as long as its reader takes.
var ErrBackupRunning = errors.New("queue: a backup is already running")

// BackupManifest closes a backup stream.
type BackupManifest struct {
	Format     string `json:"format"`
	Version    int    `json:"version"`
	QueueBytes int64  `json:"queue_bytes"` // the length of queue.db
	Messages   int    `json:"messages"`    // open messages in the copy
	Bodies     int    `json:"bodies"`      // spool files carried
	BodyBytes  int64  `json:"body_bytes"`
	// Missing names the spooled bodies the copy needs that the spool
	// directory did not have: damage of the live queue, which `queue
	// check` of the copy reports too.
	Missing []string `json:"missing,omitempty"`
}

// Check reports whether m is the manifest of a stream this version reads.
func (m BackupManifest) Check() error {
	if m.Format != backupFormat || m.Version != backupVersion {
		return fmt.Errorf("queue: backup: manifest of format %q version %d, this sluice reads %q version %d", m.Format, m.Version, backupFormat, backupVersion)
	}
	return nil
}

// Backup writes a consistent copy of the queue to w as a backup stream,
// without stopping anything: the queue file comes from one read
// transaction (bbolt's Tx.WriteTo: commits go on meanwhile, the pages
// the copy reads are not reused until it ends), then the spool files the
// copy's open messages name. Removing body files is deferred from before
// that transaction until the end (spoolPins), so each one the copy needs
// is still there when it is read, even if its message was delivered
// meanwhile. One backup runs at a time (ErrBackupRunning).
//
// The read transaction lasts as long as w takes the file: while it is
// open, a commit that must grow bbolt's memory map waits for it (bbolt
// remaps under a lock that read transactions share), so w should be
// fast (a local file, a unix socket), not a slow network.
func (q *Queue) Backup(w io.Writer) (BackupManifest, error) {
	man := BackupManifest{Format: backupFormat, Version: backupVersion}
	if !q.backupMu.TryLock() {
		return man, ErrBackupRunning
	}
	defer q.backupMu.Unlock()
	q.pins.pin()
	defer func() { q.removeSpooled(q.pins.unpin()) }()
	now := q.now()
	tw := tar.NewWriter(w)
	var spooled []string
	err := q.view(func(tx *bbolt.Tx) error {
		man.QueueBytes = tx.Size()
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: BackupQueueFile, Mode: 0o600, Size: man.QueueBytes, ModTime: now, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tx.WriteTo(tw); err != nil {
			return fmt.Errorf("copy the queue file: %w", err)
		}
		msgs := tx.Bucket(bktMsgs)
		return tx.Bucket(bktOpen).ForEach(func(k, _ []byte) error {
			man.Messages++
			v := msgs.Get(k)
			if v == nil {
				return nil // damage: CheckPath of the copy names it
			}
			m, err := decodeMsg(v)
			if err == nil && m.Spooled {
				spooled = append(spooled, string(k))
			}
			return nil
		})
	})
	if err != nil {
		return man, fmt.Errorf("queue: backup: %w", err)
	}
	// The transaction is closed: the bodies are pinned, not the pages.
	for _, id := range spooled {
		n, err := copySpoolFile(tw, q.spoolPath(id), BackupSpoolPrefix+id, now)
		if errors.Is(err, os.ErrNotExist) {
			man.Missing = append(man.Missing, id)
			continue
		}
		if err != nil {
			return man, fmt.Errorf("queue: backup: body of %s: %w", id, err)
		}
		man.Bodies++
		man.BodyBytes += n
	}
	b, err := json.Marshal(man)
	if err != nil {
		return man, err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: BackupManifestName, Mode: 0o600, Size: int64(len(b)), ModTime: now, Format: tar.FormatPAX}); err != nil {
		return man, fmt.Errorf("queue: backup: %w", err)
	}
	if _, err := tw.Write(b); err != nil {
		return man, fmt.Errorf("queue: backup: %w", err)
	}
	if err := tw.Close(); err != nil {
		return man, fmt.Errorf("queue: backup: %w", err)
	}
	return man, nil
}

// copySpoolFile writes one body file as a tar entry. A body file is
// never written again once published, so its size is its length.
func copySpoolFile(tw *tar.Writer, path, name string, now time.Time) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o600, Size: st.Size(), ModTime: now, Format: tar.FormatPAX}); err != nil {
		return 0, err
	}
	return io.CopyN(tw, f, st.Size())
}

// spoolPins defers the removal of body files while a backup may still
// need them: removals asked for while pinned run at the last unpin.
type spoolPins struct {
	mu       sync.Mutex
	n        int
	deferred []string
}

func (p *spoolPins) pin() {
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
}

// unpin returns the removals to run now (none while still pinned).
func (p *spoolPins) unpin() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n--
	if p.n > 0 {
		return nil
	}
	ids := p.deferred
	p.deferred = nil
	return ids
}

// hold keeps ids for later and reports true while pinned.
func (p *spoolPins) hold(ids []string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == 0 {
		return false
	}
	p.deferred = append(p.deferred, ids...)
	return true
}

// SavedBackup is what SaveBackup wrote.
type SavedBackup struct {
	Manifest BackupManifest
	Path     string   // the queue file: the path asked for, or Damaged
	SpoolDir string   // where the body files went
	Problems []string // what CheckPath found in the copy
}

// SaveBackup reads a backup stream from r and writes it as the queue file
// at path, its body files in the spool directory next to it (the layout
// of a data dir, which Open, CheckPath and Export read), so that path
// holds a complete copy or is left as it was:
//
//   - each body file is written to a temporary name, fsynced and renamed
//     (a body file never changes, so one already there from an earlier
//     backup is the same bytes);
//   - the queue file goes to a temporary name next to path and is
//     fsynced; the stream must end with its manifest, and the lengths
//     must agree;
//   - the copy is checked (CheckPath: every page, record and body);
//   - only then is it renamed over path, and the directory fsynced.
//
// A copy with problems does not replace path: it is kept as
// path.damaged for a closer look, and the problems are returned (the
// queue the daemon runs on has them too).
func SaveBackup(r io.Reader, path string) (SavedBackup, error) {
	out := SavedBackup{Path: path, SpoolDir: spoolDirOf(path)}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".partial-*")
	if err != nil {
		return out, err
	}
	tmpName := tmp.Name()
	keep := false
	defer func() {
		tmp.Close()
		if !keep {
			os.Remove(tmpName)
		}
	}()
	tr := tar.NewReader(r)
	var (
		gotQueue, gotManifest bool
		queueBytes, bodies    int64
		bodyBytes             int64
		spoolMade             bool
	)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("queue: backup stream: %w", err)
		}
		if gotManifest {
			return out, fmt.Errorf("queue: backup stream: %q after the manifest", h.Name)
		}
		if h.Typeflag != tar.TypeReg {
			return out, fmt.Errorf("queue: backup stream: %q is not a regular file", h.Name)
		}
		switch id, isBody := strings.CutPrefix(h.Name, BackupSpoolPrefix); {
		case h.Name == BackupQueueFile && !gotQueue:
			gotQueue = true
			if queueBytes, err = io.Copy(tmp, tr); err != nil {
				return out, fmt.Errorf("queue: backup stream: %w", err)
			}
			if err := tmp.Sync(); err != nil {
				return out, storageErr("backup: fsync", err)
			}
		case isBody && validID(id) && gotQueue:
			if !spoolMade {
				if err := os.MkdirAll(out.SpoolDir, 0o700); err != nil {
					return out, err
				}
				spoolMade = true
			}
			n, err := saveSpoolFile(tr, out.SpoolDir, id)
			if err != nil {
				return out, err
			}
			bodies++
			bodyBytes += n
		case h.Name == BackupManifestName && gotQueue:
			gotManifest = true
			b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
			if err != nil {
				return out, fmt.Errorf("queue: backup stream: %w", err)
			}
			if err := json.Unmarshal(b, &out.Manifest); err != nil {
				return out, fmt.Errorf("queue: backup manifest: %w", err)
			}
			if err := out.Manifest.Check(); err != nil {
				return out, err
			}
		default:
			return out, fmt.Errorf("queue: backup stream: unexpected entry %q", h.Name)
		}
	}
	m := out.Manifest
	switch {
	case !gotManifest:
		return out, errors.New("queue: backup stream: it ended before its manifest (cut short)")
	case m.QueueBytes != queueBytes || m.Bodies != int(bodies) || m.BodyBytes != bodyBytes:
		return out, fmt.Errorf("queue: backup stream: %d bytes of queue file and %d bodies (%d bytes), the manifest says %d, %d (%d)",
			queueBytes, bodies, bodyBytes, m.QueueBytes, m.Bodies, m.BodyBytes)
	}
	if spoolMade {
		if err := syncDir(out.SpoolDir); err != nil {
			return out, err
		}
	}
	if err := tmp.Close(); err != nil {
		return out, storageErr("backup: close", err)
	}
	rep, err := CheckPath(tmpName)
	if err != nil {
		return out, err
	}
	out.Problems = rep.Problems
	for _, id := range m.Missing {
		out.Problems = append(out.Problems, fmt.Sprintf("message %s: its body file was missing from the daemon's spool directory", id))
	}
	if len(out.Problems) > 0 {
		out.Path = path + ".damaged"
	}
	if err := os.Rename(tmpName, out.Path); err != nil {
		return out, storageErr("backup: rename", err)
	}
	keep = true
	return out, syncDir(dir)
}

// saveSpoolFile writes one body file: a temporary name, fsync, rename.
func saveSpoolFile(r io.Reader, dir, id string) (int64, error) {
	f, err := os.CreateTemp(dir, spoolTempPrefix+"*")
	if err != nil {
		return 0, storageErr("backup: body file", err)
	}
	defer os.Remove(f.Name()) // a no-op after the rename
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, id))
	}
	if err != nil {
		return n, storageErr("backup: body file "+id, err)
	}
	return n, nil
}
