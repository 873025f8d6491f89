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
var noSpaceErrnos = []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT}

// unwritableErrnos mean "this storage does not take writes at all": a
// read-only mount or missing permissions. They map to ErrUnwritable:
// telling the operator "no space" would send them hunting for disk space
// that is not missing, and the client gets 451 4.3.0 (a local problem),
// not 452 4.3.1.
var unwritableErrnos = []syscall.Errno{syscall.EROFS, syscall.EACCES, syscall.EPERM}

// isNoSpace reports whether err is (or, as text, names) one of
// noSpaceErrnos. The text match exists because bbolt formats some errors
// with %s (its file grow path), which drops the errno from the chain.
func isNoSpace(err error) bool {
	return errors.Is(err, ErrNoSpace) || matchErrno(err, noSpaceErrnos)
}

// isUnwritable is isNoSpace for unwritableErrnos.
func isUnwritable(err error) bool {
	return errors.Is(err, ErrUnwritable) || matchErrno(err, unwritableErrnos)
}

func matchErrno(err error, errnos []syscall.Errno) bool {
	if err == nil {
		return false
	}
	for _, e := range errnos {
		if errors.Is(err, e) {
			return true
		}
	}
	msg := err.Error()
	for _, e := range errnos {
		if strings.Contains(msg, e.Error()) {
			return true
		}
	}
	return false
}

// storageErr wraps a storage failure for the caller: ErrNoSpace when the
// disk is full, ErrUnwritable when it is read-only or not writable by us,
// the bare cause otherwise. The cause is always in the chain and in the
// text, so the log names the real error.
func storageErr(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, ErrNoSpace), errors.Is(err, ErrUnwritable):
		return fmt.Errorf("queue: %s: %w", op, err)
	case isNoSpace(err):
		return fmt.Errorf("queue: %s: %w: %w", op, ErrNoSpace, err)
	case isUnwritable(err):
		return fmt.Errorf("queue: %s: %w: %w", op, ErrUnwritable, err)
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
