package queue

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.etcd.io/bbolt"
)

// Get returns the message with its recipients and their history, or an
// error wrapping ErrNotFound.
func (q *Queue) Get(id string) (*Message, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	var out *Message
	err := q.view(func(tx *bbolt.Tx) error {
		m, err := readMessage(tx, id)
		out = m
		return err
	})
	return out, err
}

// readMessage loads a message and its recipients inside tx.
func readMessage(tx *bbolt.Tx, id string) (*Message, error) {
	v := tx.Bucket(bktMsgs).Get([]byte(id))
	if v == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	m, err := decodeMsg(v)
	if err != nil {
		return nil, err
	}
	rcpts, err := readRcpts(tx, id)
	if err != nil {
		return nil, err
	}
	msg := m.public(id, rcpts)
	return &msg, nil
}

func readRcpts(tx *bbolt.Tx, id string) ([]Recipient, error) {
	var rcpts []Recipient
	prefix := []byte(id)
	c := tx.Bucket(bktRcpts).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		r, err := decodeRcpt(v)
		if err != nil {
			return nil, err
		}
		rcpts = append(rcpts, r.public())
	}
	return rcpts, nil
}

// Body is an open message body: a reader over the stored bytes that holds
// no bbolt transaction, so it may be read slowly (over a network send)
// without blocking the queue file's growth. Close it when done.
type Body struct {
	r      io.Reader
	f      *os.File // the spooled part, nil for an inline body
	size   int64
	eight  bool
	closed bool
}

// BodyOf returns an open body reading b: what an in-memory stand-in for
// the queue (the virtual-time simulator, internal/sim) hands out where
// OpenBody would read the file.
func BodyOf(b []byte) *Body {
	return &Body{r: bytes.NewReader(b), size: int64(len(b)), eight: has8Bit(b)}
}

// Read implements io.Reader.
func (b *Body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, os.ErrClosed
	}
	return b.r.Read(p)
}

// Close releases the spool file, if any.
func (b *Body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if b.f != nil {
		return b.f.Close()
	}
	return nil
}

// Size is the body's length in bytes.
func (b *Body) Size() int64 { return b.size }

// Has8Bit reports whether the body contains a byte >= 0x80, without
// reading it: it was noted when the body was stored.
func (b *Body) Has8Bit() bool { return b.eight }

// OpenBody opens the body of message id for reading, or fails with an
// error wrapping ErrNotFound once the message is final (bodies are dropped
// then) or gone. It is the one way to read a body, inline or spooled: an
// inline body is copied out of the queue file (it is small), a spooled one
// is read from its file.
func (q *Queue) OpenBody(id string) (*Body, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	var (
		head    []byte
		spooled bool
		eight   bool
		size    int64
	)
	err := q.view(func(tx *bbolt.Tx) error {
		// storedBody copies: bbolt memory is only valid inside the
		// transaction.
		v, ok := storedBody(tx.Bucket(bktBodies), id)
		if !ok {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		head = v
		mv := tx.Bucket(bktMsgs).Get([]byte(id))
		if mv == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		m, err := decodeMsg(mv)
		if err != nil {
			return err
		}
		spooled, eight, size = m.Spooled, m.EightBit, m.Size
		return nil
	})
	if err != nil {
		return nil, err
	}
	return openStoredBody(id, head, spooled, eight, size, q.spoolPath(id))
}

// openStoredBody assembles a stored body: the bodies bucket's value
// (head), followed, for a spooled message, by its spool file. It is the
// body accessor's one rule, shared by OpenBody and Export (which reads a
// file that may be damaged, without bbolt).
func openStoredBody(id string, head []byte, spooled, eight bool, size int64, spoolPath string) (*Body, error) {
	if !spooled {
		// Inline bodies are small: scanning the copy costs nothing and
		// also covers records written before the flag existed.
		return &Body{r: bytes.NewReader(head), size: int64(len(head)), eight: has8Bit(head)}, nil
	}
	f, err := os.Open(spoolPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			// Final in the meantime (the file goes after the commit
			// that makes the message final), or a damaged queue.
			return nil, errSpoolMissing(id, err)
		}
		return nil, storageErr("open body", err)
	}
	return &Body{r: io.MultiReader(bytes.NewReader(head), f), f: f, size: size, eight: eight}, nil
}
