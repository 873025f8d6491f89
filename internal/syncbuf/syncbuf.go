// Package syncbuf is a bytes.Buffer safe for concurrent use: the sink of
// a logger that tests read while the code under test still writes.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer is written by many goroutines and read whole by String.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
