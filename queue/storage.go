package queue

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// noSpaceErrnos are the errors that mean "this disk cannot take more mail
// right now". They map to ErrNoSpace so that the SMTP boundary answers a
// temporary 452 4.3.1 (RFC 3463 §3.4, "mail system full") instead of
// failing the transaction permanently.
var noSpaceErrnos = []syscall.Errno{
	syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EACCES, syscall.EPERM,
}

// isNoSpace reports whether err is (or, as text, names) one of
// noSpaceErrnos. The text match exists because bbolt formats some errors
// with %s (its file grow path), which drops the errno from the chain.
func isNoSpace(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrNoSpace) {
		return true
	}
	for _, e := range noSpaceErrnos {
		if errors.Is(err, e) {
			return true
		}
	}
	msg := err.Error()
	for _, e := range noSpaceErrnos {
		if strings.Contains(msg, e.Error()) {
			return true
		}
	}
	return false
}

// storageErr wraps a storage failure for the caller: ErrNoSpace when the
// cause is a full, read-only or unwritable disk, the bare cause otherwise.
func storageErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNoSpace) {
		return fmt.Errorf("queue: %s: %w", op, err)
	}
	if isNoSpace(err) {
		return fmt.Errorf("queue: %s: %w: %w", op, ErrNoSpace, err)
	}
	return fmt.Errorf("queue: %s: %w", op, err)
}

// freeBytes returns the space available to an unprivileged user on the
// file system holding dir.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
