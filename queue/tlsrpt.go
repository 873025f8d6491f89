package queue

import (
	"bytes"
	"context"

	"go.etcd.io/bbolt"
)

// bktTLSRPT: TLS-RPT tallies (RFC 8460), owned by package tlsrpt: one
// key per reporting period, policy domain and policy type, a few hundred
// bytes each, deleted once the period's report is delivered. Kept in the
// queue file so that a day's outcomes survive a restart.
var bktTLSRPT = []byte("tlsrpt")

// UpdateTLSReports rewrites keys in one write transaction: fn gets each
// key's current value (nil when absent) and returns the new one. The
// batch shares group commits with other writes.
func (q *Queue) UpdateTLSReports(keys []string, fn func(key string, old []byte) ([]byte, error)) error {
	return q.write(context.Background(), func(w *wtx) error {
		b := w.b(bktTLSRPT)
		for _, k := range keys {
			v, err := fn(k, b.Get([]byte(k)))
			if err != nil {
				return err
			}
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}

// TLSReports returns the stored tallies whose keys sort before before
// (package tlsrpt's keys begin with their period: the closed periods).
func (q *Queue) TLSReports(before string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := q.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bktTLSRPT)
		if b == nil {
			return nil // a file of an older sluice, opened read-only
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil && bytes.Compare(k, []byte(before)) < 0; k, v = c.Next() {
			out[string(k)] = bytes.Clone(v)
		}
		return nil
	})
	return out, err
}

// DeleteTLSReports forgets keys.
func (q *Queue) DeleteTLSReports(keys []string) error {
	return q.write(context.Background(), func(w *wtx) error {
		b := w.b(bktTLSRPT)
		for _, k := range keys {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}
