package queue

import (
	"bytes"
	"context"
	"fmt"

	"go.etcd.io/bbolt"
)

// bktMTASTS: policy domain -> cached MTA-STS policy (opaque bytes owned
// by package mtasts: a few hundred bytes each, dropped once expired;
// RFC 8461 §3.3 wants them to survive a restart, hence the queue file).
var bktMTASTS = []byte("mtasts")

// LoadSTSPolicy returns the cached MTA-STS policy of domain, nil when
// there is none.
func (q *Queue) LoadSTSPolicy(domain string) ([]byte, error) {
	var out []byte
	err := q.view(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bktMTASTS).Get([]byte(domain)); v != nil {
			out = bytes.Clone(v)
		}
		return nil
	})
	return out, err
}

// SaveSTSPolicy stores domain's MTA-STS policy; it shares group commits
// with other writes.
func (q *Queue) SaveSTSPolicy(domain string, v []byte) error {
	if domain == "" {
		return fmt.Errorf("queue: save MTA-STS policy: empty domain")
	}
	v = bytes.Clone(v)
	if v == nil {
		v = []byte{}
	}
	return q.write(context.Background(), func(w *wtx) error {
		return w.b(bktMTASTS).Put([]byte(domain), v)
	}, nil)
}

// DeleteSTSPolicy forgets domain's MTA-STS policy.
func (q *Queue) DeleteSTSPolicy(domain string) error {
	return q.write(context.Background(), func(w *wtx) error {
		return w.b(bktMTASTS).Delete([]byte(domain))
	}, nil)
}
