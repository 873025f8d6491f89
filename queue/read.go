package queue

import (
	"bytes"
	"fmt"

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

// Body returns a copy of the message body (kept until the message is
// pruned), or an error wrapping ErrNotFound.
func (q *Queue) Body(id string) ([]byte, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	var out []byte
	err := q.view(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bktBodies).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		// bbolt memory is only valid inside the transaction.
		out = bytes.Clone(v)
		if out == nil {
			out = []byte{}
		}
		return nil
	})
	return out, err
}
