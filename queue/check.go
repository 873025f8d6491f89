package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
)

// Check runs bbolt's consistency check, checks that every open message
// with a spooled body has its file, and returns every problem found,
// joined.
func (q *Queue) Check() error {
	var errs []error
	err := q.view(func(tx *bbolt.Tx) error {
		for e := range tx.Check() {
			errs = append(errs, e)
		}
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
