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

// PruneSTSPolicies deletes the cached MTA-STS policies that expired
// says are past their max_age, and returns how many went: a domain not
// mailed again would otherwise keep its entry forever.
func (q *Queue) PruneSTSPolicies(expired func(v []byte) bool) (int, error) {
	var gone [][]byte
	if err := q.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bktMTASTS).ForEach(func(k, v []byte) error {
			if expired(v) {
				gone = append(gone, bytes.Clone(k))
			}
			return nil
		})
	}); err != nil || len(gone) == 0 {
		return 0, err
	}
	err := q.write(context.Background(), func(w *wtx) error {
		b := w.b(bktMTASTS)
		for _, k := range gone {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}, nil)
	if err != nil {
		return 0, err
	}
	return len(gone), nil
}
