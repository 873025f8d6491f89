package queue

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"go.etcd.io/bbolt"
)

// Check runs bbolt's consistency check, checks that every open message
// with a spooled body has its file and that the counters and the
// recipient index equal a recount (verifyCounters), and returns every
// problem found, joined. It reads the whole file.
func (q *Queue) Check() error {
	var errs []error
	err := q.view(func(tx *bbolt.Tx) error {
		for e := range tx.Check() {
			errs = append(errs, e)
		}
		errs = append(errs, verifyCounters(tx)...)
		msgs := tx.Bucket(bktMsgs)
		return tx.Bucket(bktOpen).ForEach(func(k, _ []byte) error {
			v := msgs.Get(k)
			if v == nil {
				errs = append(errs, fmt.Errorf("open index names missing message %s", k))
				return nil
			}
			m, err := decodeMsg(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("message %s: %w", k, err))
				return nil
			}
			if m.Spooled {
				if _, err := os.Stat(q.spoolPath(string(k))); err != nil {
					errs = append(errs, errSpoolMissing(string(k), err))
				}
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		return fmt.Errorf("queue: check: %w", errors.Join(errs...))
	}
	return nil
}

// compactTxSize bounds each copy transaction of Compact.
const compactTxSize = 64 << 20

// Compact rewrites the queue file at path without its free pages (bbolt
// files never shrink). It runs offline: it fails with ErrLocked while a
// sluice serve holds the file. The copy goes to PATH.compact, is synced,
// renamed over PATH, and the directory is synced so the rename survives
// a crash.
func Compact(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("queue: compact: %w", err)
	}
	if err := CheckFile(path); err != nil {
		return err
	}
	src, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if errors.Is(err, bbolt.ErrTimeout) {
		return fmt.Errorf("queue file %s is locked: is another sluice serve running on this data_dir?: %w", path, ErrLocked)
	}
	if err != nil {
		return storageErr("compact: open", err)
	}
	// Keep src open (and locked) until the rename, so no daemon starts
	// on the old file in between.
	defer src.Close()
	tmp := path + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return storageErr("compact: remove stale copy", err)
	}
	dst, err := bbolt.Open(tmp, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return storageErr("compact: create copy", err)
	}
	if err := bbolt.Compact(dst, src, compactTxSize); err != nil {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return storageErr("compact", err)
	}
	if err := dst.Sync(); err != nil {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return storageErr("compact: sync copy", err)
	}
	if err := dst.Close(); err != nil {
		_ = os.Remove(tmp)
		return storageErr("compact: close copy", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return storageErr("compact: rename", err)
	}
	return syncDir(filepath.Dir(path))
}

// syncDir fsyncs a directory so that a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return storageErr("sync dir", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return storageErr("sync dir", err)
	}
	return nil
}

// CheckReport is what CheckPath found.
type CheckReport struct {
	Pages    uint64 // the file's high-water mark
	Messages int    // message records
	Problems []string
}

// CheckPath runs the full offline check of the queue file at path (of a
// stopped daemon: it refuses a locked file with ErrLocked): the O(1)
// checks of CheckFile, a walk of every bucket that checks each page
// (rawFile, no memory map), that every open message's records and body
// (and spool file) are readable, and, when the pages are sound, bbolt's
// own consistency check (Tx.Check: page references, freelist) and a
// recount of every recipient against the counters and the recipient
// index the daemon keeps (verifyCounters). It
// returns a report of the problems found; err is for a file that could
// not be checked at all.
func CheckPath(path string) (CheckReport, error) {
	var rep CheckReport
	rf, err := openRaw(path, 0)
	if err != nil {
		return rep, err
	}
	rep.Pages = rf.meta.hwm
	problem := func(err error) { rep.Problems = append(rep.Problems, err.Error()) }
	err = rf.eachBucket(func(name []byte, b rawBucket) error {
		return rf.walk(b, func(k, v []byte, _ uint32) error { return nil }, problem)
	})
	if err != nil {
		problem(err)
	}
	if len(rep.Problems) == 0 {
		// The pages are sound: check the records through the export
		// code path, writing nowhere.
		er, err := Export(io.Discard, ExportOptions{Path: path, Tolerant: true, Warn: func(p string) { rep.Problems = append(rep.Problems, p) }, rf: rf})
		if err != nil {
			problem(err)
		}
		rep.Messages = er.Messages + len(er.Lost)
	}
	rf.Close()
	if len(rep.Problems) == 0 {
		for _, p := range boltCheck(path) {
			problem(p)
		}
	}
	return rep, nil
}

// boltCheck runs bbolt's Tx.Check, then the counters' recount, on a file
// whose pages rawFile found sound. A panic or a memory fault in bbolt is
// reported, not fatal.
func boltCheck(path string) (problems []error) {
	defer func() {
		if r := recover(); r != nil {
			problems = append(problems, fmt.Errorf("bbolt check: %v", r))
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return []error{err}
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		for e := range tx.Check() {
			problems = append(problems, e)
		}
		if len(problems) == 0 {
			problems = append(problems, verifyCounters(tx)...)
		}
		return nil
	})
	if err != nil {
		problems = append(problems, err)
	}
	return problems
}
