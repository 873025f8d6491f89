package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// FileKind says what is wrong with a queue file.
type FileKind int

const (
	// FileDamaged: the file is not a readable queue file (bad meta
	// pages, truncated, a bad page header).
	FileDamaged FileKind = iota + 1
	// FileEmpty: the file exists with 0 bytes.
	FileEmpty
	// FileMissing: the file is gone from a data dir that had a queue.
	FileMissing
)

// ErrDamaged is matched (errors.Is) by every *FileError.
var ErrDamaged = errors.New("queue: the queue file is damaged or missing")

// FileError reports a queue file that sluice must not open as it is. The
// caller (the daemon, the CLI) adds what the operator should do.
type FileError struct {
	Path   string
	Kind   FileKind
	Detail string
}

func (e *FileError) Error() string { return fmt.Sprintf("queue file %s: %s", e.Path, e.Detail) }

// Is makes every FileError match ErrDamaged.
func (e *FileError) Is(target error) bool { return target == ErrDamaged }

// CheckFile runs the checks that Open runs before it maps the file: the
// meta pages (magic, version, checksum, page size), the file length
// against the meta's high-water mark, and the headers of the root,
// freelist and top-level bucket pages. They cost a few page reads,
// whatever the file's size, so a big queue still starts at once; the
// full check is CheckPath. They exist because a damaged file is not an
// error bbolt reports: it asserts (a panic) on a bad page header, and a
// page beyond the end of a truncated file faults in its memory map, which
// kills the process with SIGSEGV/SIGBUS before recover() could help.
// A missing file is reported as an error wrapping os.ErrNotExist.
func CheckFile(path string) error { return checkFile(path, 0) }

func checkFile(path string, lockWait time.Duration) error {
	rf, err := openRaw(path, lockWait)
	if err != nil {
		return err
	}
	return rf.Close()
}

// MarkerPath is the marker file written next to the queue file at path
// when the queue is first created: its presence says that this data dir
// had a queue, so a missing or empty queue file is a loss to report, not
// a fresh start.
func MarkerPath(path string) string { return path + ".created" }

// preflightFile decides whether Open may open or create the file at
// o.Path: an existing file must pass CheckFile; a missing file is created
// only if the data dir never had a queue (no marker) or o.NewQueue is set;
// an empty file only with o.NewQueue.
func preflightFile(o Options) error {
	st, err := os.Stat(o.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		mk, merr := os.ReadFile(MarkerPath(o.Path))
		if merr == nil && !o.NewQueue {
			return &FileError{Path: o.Path, Kind: FileMissing,
				Detail: fmt.Sprintf("the file is missing, but this data dir had a queue (%s: %s)", MarkerPath(o.Path), trimLine(mk))}
		}
		return nil
	case err != nil:
		return storageErr("stat "+o.Path, err)
	case st.Size() == 0:
		if !o.NewQueue {
			return &FileError{Path: o.Path, Kind: FileEmpty, Detail: "the file is empty (0 bytes): it was truncated, or never written"}
		}
		// bbolt initialises an empty file as a new queue.
		return nil
	}
	return checkFile(o.Path, o.LockTimeout)
}

func trimLine(b []byte) string {
	s := string(b)
	for i, c := range s {
		if c == '\n' || c == '\r' {
			return s[:i]
		}
	}
	return s
}

// writeMarker records that the data dir has a queue, once: durably, so
// that a queue file lost in a crash is noticed at the next start.
func writeMarker(path string, now time.Time) error {
	mp := MarkerPath(path)
	if _, err := os.Stat(mp); err == nil {
		return nil
	}
	f, err := os.OpenFile(mp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return storageErr("write marker", err)
	}
	_, err = fmt.Fprintf(f, "queue created %s; if %s is missing or empty, mail was lost: see docs/operations.md\n", now.UTC().Format(time.RFC3339), filepath.Base(path))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return storageErr("write marker", err)
	}
	return syncDir(filepath.Dir(path))
}
