package queue

import (
	"errors"
	"fmt"
	"os"
	"time"

	"go.etcd.io/bbolt"
)

// NeedsCompaction reports whether the queue file at path is at least
// minSize bytes and less than (1-maxFree) of it holds live pages. bbolt
// files never shrink: after a backlog drains, most of the file is free
// pages. The daemon checks this at start-up, before it opens the queue,
// and compacts when it is true.
func NeedsCompaction(path string, minSize int64, maxFree float64) (bool, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if fi.Size() < minSize {
		return false, nil
	}
	if err := CheckFile(path); err != nil {
		return false, err
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, bbolt.ErrTimeout) {
		return false, fmt.Errorf("queue file %s is locked: is another sluice serve running on this data_dir?: %w", path, ErrLocked)
	}
	if err != nil {
		return false, storageErr("compaction check: open", err)
	}
	defer db.Close()
	var live int64
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bbolt.Bucket) error {
			st := b.Stats()
			live += int64(st.BranchAlloc + st.LeafAlloc)
			return nil
		})
	})
	if err != nil {
		return false, err
	}
	return float64(live) < (1-maxFree)*float64(fi.Size()), nil
}
