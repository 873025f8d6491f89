package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"go.etcd.io/bbolt"

	"sluice/mailbox"
)

// Suppressed addresses are compared in their canonical form (package
// mailbox: `"john"@x` is john@x, `"jane@doe"@x` stays quoted), which is
// the form the inbound side stores and delivery reports, and
// case-insensitively as a whole. The local part is case-sensitive in
// theory (RFC 5321 §2.4), but no provider treats it so, and a suppression
// that misses on case would mail someone who asked not to be mailed. Text
// that is not an address is keyed as typed.
func suppKey(addr string) string {
	addr = strings.TrimSpace(addr)
	if c, err := mailbox.Canonical(addr); err == nil {
		addr = c
	}
	return strings.ToLower(addr)
}

func (q *Queue) loadSuppressions() error {
	set := map[string]struct{}{}
	err := q.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bktSuppress).ForEach(func(k, _ []byte) error {
			// Keys written before they were canonical match too.
			set[suppKey(string(k))] = struct{}{}
			return nil
		})
	})
	if err != nil {
		return err
	}
	q.suppMu.Lock()
	q.supp = set
	q.suppMu.Unlock()
	return nil
}

// Suppress adds addr to the suppression list (or updates its reason).
func (q *Queue) Suppress(addr, reason string) error {
	k := suppKey(addr)
	if k == "" {
		return fmt.Errorf("queue: suppress: empty address")
	}
	v, err := json.Marshal(suppRec{Addr: addr, Reason: reason, At: q.now()})
	if err != nil {
		return fmt.Errorf("queue: suppress: %w", err)
	}
	err = q.write(context.Background(), func(w *wtx) error {
		if err := w.b(bktSuppress).Put([]byte(k), v); err != nil {
			return err
		}
		return w.emit(Event{Type: EventSuppressed, Recipient: addr, Reason: reason})
	}, func() {
		q.suppMu.Lock()
		q.supp[k] = struct{}{}
		q.suppMu.Unlock()
	})
	if f := q.onSuppress.Load(); err == nil && f != nil {
		(*f)(addr, reason)
	}
	return err
}

// OnSuppress has f told of every address Suppress adds, after it is
// committed, in Suppress's caller (a cluster shares the list, issue 15).
// f must not block and must not call Suppress.
func (q *Queue) OnSuppress(f func(addr, reason string)) { q.onSuppress.Store(&f) }

// Unsuppress removes addr; it reports whether it was listed.
func (q *Queue) Unsuppress(addr string) (bool, error) {
	k := suppKey(addr)
	var found bool
	err := q.write(context.Background(), func(w *wtx) error {
		b := w.b(bktSuppress)
		// Every stored key that means this address: k itself, and any
		// key from before keys were canonical (an operator action, so
		// the scan is affordable).
		var del [][]byte
		_ = b.ForEach(func(sk, _ []byte) error {
			if string(sk) == k || suppKey(string(sk)) == k {
				del = append(del, append([]byte(nil), sk...))
			}
			return nil
		})
		found = len(del) > 0
		for _, sk := range del {
			if err := b.Delete(sk); err != nil {
				return err
			}
		}
		return nil
	}, func() {
		q.suppMu.Lock()
		delete(q.supp, k)
		q.suppMu.Unlock()
	})
	return found, err
}

// IsSuppressed reports whether addr is listed. It reads an in-memory set
// mirrored from the file after each commit, so it costs no I/O.
func (q *Queue) IsSuppressed(addr string) bool {
	k := suppKey(addr)
	q.suppMu.RLock()
	_, ok := q.supp[k]
	q.suppMu.RUnlock()
	return ok
}

// Suppressions lists the suppression list in address order.
func (q *Queue) Suppressions() ([]Suppression, error) {
	var out []Suppression
	err := q.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bktSuppress).ForEach(func(k, v []byte) error {
			var r suppRec
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("queue: decode suppression %q: %w", k, err)
			}
			out = append(out, Suppression{Addr: r.Addr, Reason: r.Reason, At: r.At})
			return nil
		})
	})
	return out, err
}
