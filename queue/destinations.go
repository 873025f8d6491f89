package queue

import (
	"bytes"
	"context"
	"fmt"

	"go.etcd.io/bbolt"
)

// Destination state is opaque bytes owned by package policy (its
// StateStore); the queue only makes it durable.

// LoadDestinations returns every saved destination state.
func (q *Queue) LoadDestinations() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := q.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bktDest).ForEach(func(k, v []byte) error {
			out[string(k)] = bytes.Clone(v)
			return nil
		})
	})
	return out, err
}

// LoadDestination returns the saved state of name, nil when there is
// none (policy reads back a destination it dropped from memory).
func (q *Queue) LoadDestination(name string) ([]byte, error) {
	var out []byte
	err := q.view(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bktDest).Get([]byte(name)); v != nil {
			out = bytes.Clone(v)
		}
		return nil
	})
	return out, err
}

// SaveDestination stores state for name; it shares group commits with
// other writes.
func (q *Queue) SaveDestination(name string, state []byte) error {
	if name == "" {
		return fmt.Errorf("queue: save destination: empty name")
	}
	v := bytes.Clone(state)
	if v == nil {
		v = []byte{}
	}
	return q.write(context.Background(), func(w *wtx) error {
		return w.b(bktDest).Put([]byte(name), v)
	}, nil)
}

// DeleteDestination forgets the state of name.
func (q *Queue) DeleteDestination(name string) error {
	return q.write(context.Background(), func(w *wtx) error {
		return w.b(bktDest).Delete([]byte(name))
	}, nil)
}
