package queue

import (
	"errors"
	"os"
)

// FileUsage says how much of a queue file holds live pages.
type FileUsage struct {
	Size int64 // bytes of the file
	Live int64 // bytes of the pages below the high-water mark that are not free
}

// Usage reads how much of the queue file at path is live, from what the
// start-up check reads anyway (CheckFile: the meta pages, the freelist
// page, the roots and the small buckets start-up reads whole): its cost
// does not grow with the queued mail (issue 10: start-up work O(1) in the
// queue size; the check it replaces walked every page of every bucket).
// A file that is not there is an error wrapping os.ErrNotExist.
func Usage(path string) (FileUsage, error) {
	rf, err := openRaw(path, 0)
	if err != nil {
		return FileUsage{}, err
	}
	defer rf.Close()
	return rf.usage(), nil
}

func (rf *rawFile) usage() FileUsage {
	pages := int64(rf.meta.hwm) - int64(rf.free)
	return FileUsage{Size: rf.size, Live: max(pages, 0) * rf.pageSize}
}

// NeedsCompaction reports whether the queue file at path is at least
// minSize bytes and less than (1-maxFree) of it holds live pages. bbolt
// files never shrink: after a backlog drains, most of the file is free
// pages. It costs what Usage costs. A missing file needs nothing.
func NeedsCompaction(path string, minSize int64, maxFree float64) (bool, error) {
	if fi, err := os.Stat(path); errors.Is(err, os.ErrNotExist) || err == nil && fi.Size() < minSize {
		return false, nil
	}
	u, err := Usage(path)
	if err != nil {
		return false, err
	}
	return float64(u.Live) < (1-maxFree)*float64(u.Size), nil
}
