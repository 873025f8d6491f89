package queue

import "errors"

var (
	// ErrNoSpace means the data directory cannot take new mail: the disk
	// is full, below the free-space reserve, read-only or unwritable. The
	// SMTP boundary answers 452 4.3.1 (RFC 3463: mail system full).
	ErrNoSpace = errors.New("queue: no space for new mail")
	// ErrLocked means another process holds the queue file.
	ErrLocked = errors.New("queue: file is locked by another process")
	// ErrNotFound means no message has that ID.
	ErrNotFound = errors.New("queue: no such message")
)
