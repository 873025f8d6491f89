package queue

import "errors"

var (
	// ErrNoSpace means the data directory cannot take new mail: the disk
	// is full or below the free-space reserve. The SMTP boundary answers
	// 452 4.3.1 (RFC 3463: mail system full).
	ErrNoSpace = errors.New("queue: no space for new mail")
	// ErrUnwritable means the data directory does not take writes: a
	// read-only file system (EROFS) or missing permissions (EACCES,
	// EPERM). The cause follows in the error text. The SMTP boundary
	// answers 451 4.3.0: a local problem, not a full disk.
	ErrUnwritable = errors.New("queue: storage is not writable")
	// ErrLocked means another process holds the queue file.
	ErrLocked = errors.New("queue: file is locked by another process")
	// ErrNotFound means no message has that ID.
	ErrNotFound = errors.New("queue: no such message")
)
