package main

import (
	"fmt"
	"os"
	"sync"
)

// syncEvery bounds the acknowledged lines that a machine crash could lose.
// The injector is not what crash tests kill, so the page cache is enough
// between syncs: a line is written to the kernel right after the 250.
const syncEvery = 100

// ackLog appends one line per acknowledged message. A nil *ackLog (no
// -acked) records nothing.
type ackLog struct {
	mu       sync.Mutex
	f        *os.File
	unsynced int
}

func openAckLog(path string) (*ackLog, error) {
	if path == "" {
		return nil, nil
	}
	// O_APPEND: several runs may share a file, and each write lands whole
	// at the end.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("acked file: %w", err)
	}
	return &ackLog{f: f}, nil
}

func (l *ackLog) record(line string) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.WriteString(line + "\n"); err != nil {
		return fmt.Errorf("acked file: %w", err)
	}
	if l.unsynced++; l.unsynced >= syncEvery {
		l.unsynced = 0
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("acked file sync: %w", err)
		}
	}
	return nil
}

func (l *ackLog) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.f.Sync(); err != nil {
		_ = l.f.Close()
		return fmt.Errorf("acked file sync: %w", err)
	}
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("acked file: %w", err)
	}
	return nil
}
