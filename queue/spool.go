package queue

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DefaultInlineMax is the body size up to which a message is stored inline
// in the queue file. Above it the body goes to a file in the spool
// directory. Inline bodies share one group commit (one fsync for many
// messages); a spooled body costs its own file fsync and a directory
// fsync, but is never copied into bbolt's pages or read through its
// memory map. docs/design-notes.md gives the measurements behind the
// value.
const DefaultInlineMax = 64 << 10

// spoolTempPrefix marks files still being written. The start-up sweep
// removes them: a message is only ever acknowledged after its file has
// been renamed to its ID.
const spoolTempPrefix = "tmp-"

// Spool collects one message body for Enqueue: in memory up to the
// queue's inline limit, then in a temporary file of the spool directory.
// Create it with Queue.NewSpool, Write the body, hand it to Enqueue in
// NewMessage.Spool, and always call Discard when done with it (a no-op
// after a successful Enqueue). A Spool is not safe for concurrent use.
type Spool struct {
	q      *Queue
	buf    []byte
	f      *os.File // the temporary file, once the body outgrew buf
	n      int64
	eight  bool // a byte >= 0x80 was written
	err    error
	closed bool // enqueued or discarded
}

// NewSpool returns an empty Spool.
func (q *Queue) NewSpool() *Spool { return &Spool{q: q} }

// Write appends p. The first error (a full disk while spilling to the
// file, typically ENOSPC, mapped to ErrNoSpace) sticks: later writes fail
// with it too, so a caller can write the whole stream and check once.
func (s *Spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.closed {
		return 0, errors.New("queue: spool already enqueued or discarded")
	}
	if !s.eight && has8Bit(p) {
		s.eight = true
	}
	if s.f == nil && s.n+int64(len(p)) > s.q.inlineMax() {
		if err := s.spill(); err != nil {
			s.err = err
			return 0, err
		}
	}
	if s.f == nil {
		s.buf = append(s.buf, p...)
	} else if _, err := s.f.Write(p); err != nil {
		s.err = storageErr("spool write", err)
		return 0, s.err
	}
	s.n += int64(len(p))
	return len(p), nil
}

// spill moves what was buffered to a new temporary file.
func (s *Spool) spill() error {
	f, err := os.CreateTemp(s.q.spoolDir, spoolTempPrefix+"*")
	if err != nil {
		return storageErr("spool create", err)
	}
	if _, err := f.Write(s.buf); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return storageErr("spool write", err)
	}
	s.f, s.buf = f, nil
	return nil
}

// Len returns the number of bytes written.
func (s *Spool) Len() int64 { return s.n }

// Spilled reports whether the body is in a file (it outgrew the inline
// limit).
func (s *Spool) Spilled() bool { return s.f != nil }

// Open returns a reader over everything written so far, for a second pass
// (DKIM signing and verification) without holding the body in memory. It
// must be closed before Enqueue.
func (s *Spool) Open() (io.ReadCloser, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.f == nil {
		return io.NopCloser(bytes.NewReader(s.buf)), nil
	}
	f, err := os.Open(s.f.Name())
	if err != nil {
		return nil, storageErr("spool reopen", err)
	}
	return f, nil
}

// Discard drops the body: the temporary file, if any, is removed. It is
// safe to call more than once, and after Enqueue (which takes the file).
func (s *Spool) Discard() {
	if s.closed {
		return
	}
	s.closed = true
	s.buf = nil
	if s.f != nil {
		_ = s.f.Close()
		_ = os.Remove(s.f.Name())
		s.f = nil
	}
}

// publish makes the spilled body durable under its final name: fsync the
// file, rename it to the message ID, fsync the directory. Only after this
// may a committed record name it (a "250" means the body is on disk).
func (s *Spool) publish(id string) error {
	if s.err != nil {
		return s.err
	}
	if s.closed {
		return errors.New("queue: spool already enqueued or discarded")
	}
	f := s.f
	if err := f.Sync(); err != nil {
		return storageErr("spool fsync", err)
	}
	if err := f.Close(); err != nil {
		return storageErr("spool close", err)
	}
	if err := os.Rename(f.Name(), s.q.spoolPath(id)); err != nil {
		return storageErr("spool rename", err)
	}
	s.f, s.closed = nil, true
	if err := syncDir(s.q.spoolDir); err != nil {
		_ = os.Remove(s.q.spoolPath(id))
		return err
	}
	return nil
}

func (q *Queue) inlineMax() int64 { return q.opts.InlineMax }

func (q *Queue) spoolPath(id string) string { return filepath.Join(q.spoolDir, id) }

// removeSpooled deletes the body files of messages whose last recipient
// became final in a commit that has just succeeded (while a backup runs,
// when it ends). A failure only leaves garbage behind, which the next
// start-up sweep removes.
func (q *Queue) removeSpooled(ids []string) {
	if q.pins.hold(ids) {
		return // a backup may copy them: removed when it ends
	}
	for _, id := range ids {
		if err := os.Remove(q.spoolPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			q.log.Warn("queue: removing a delivered body failed; the next start removes it", "id", id, "err", err)
		}
	}
}

// openSpoolDir creates the spool directory (and fsyncs its parent so
// that the directory itself survives a crash).
func (q *Queue) openSpoolDir() error {
	if _, err := os.Stat(q.spoolDir); err == nil {
		return nil
	}
	if err := os.MkdirAll(q.spoolDir, 0o700); err != nil {
		return storageErr("create spool dir", err)
	}
	return syncDir(filepath.Dir(q.spoolDir))
}

// sweepSpool removes what a crash can leave in the spool directory:
// temporary files (a body still being received, never acknowledged), and
// body files that no open message references (renamed but the commit
// never happened, or the message became final but the process died
// before removing the file). It runs at Open, before any other writer.
// Names that are neither are left alone.
func (q *Queue) sweepSpool(keep func(id string) (bool, error)) (int, error) {
	ents, err := os.ReadDir(q.spoolDir)
	if err != nil {
		return 0, storageErr("read spool dir", err)
	}
	removed := 0
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, spoolTempPrefix):
		case validID(name):
			ok, err := keep(name)
			if err != nil {
				return removed, err
			}
			if ok {
				continue
			}
		default:
			continue
		}
		if err := os.Remove(filepath.Join(q.spoolDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, storageErr("sweep spool", err)
		}
		removed++
	}
	if removed > 0 {
		if err := syncDir(q.spoolDir); err != nil {
			return removed, err
		}
	}
	return removed, nil
}

func has8Bit(p []byte) bool {
	for _, c := range p {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// errSpoolMissing names a body file that an open message references but
// that is gone: the queue is damaged (a file deleted by hand, or a disk
// that lost a synced file).
func errSpoolMissing(id string, err error) error {
	return fmt.Errorf("queue: body file of %s is missing (%w): %w", id, err, ErrNotFound)
}
