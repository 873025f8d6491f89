package queue

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestZeroOptionIsNotReplaced: Open fills nothing in (issue 9 item 21).
// A zero lock timeout or retention is refused rather than replaced; the
// zeros the options document keep their meaning.
func TestZeroOptionIsNotReplaced(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mod  func(*Options)
	}{
		{"lock timeout", func(o *Options) { o.LockTimeout = 0 }},
		{"retention", func(o *Options) { o.Retention = 0 }},
		{"path", func(o *Options) { o.Path = "" }},
	} {
		o := testOptions(filepath.Join(t.TempDir(), "q.db"))
		tc.mod(&o)
		if q, err := Open(o); err == nil {
			q.Close()
			t.Errorf("%s = 0 accepted (and would have been replaced by a default)", tc.name)
		}
	}
	// InlineMax 0: every non-empty body goes to the spool; LeaseTimeout 0:
	// leases last until the next Open; MinFreeBytes 0: no reserve.
	q, c, o := openTest(t, func(o *Options) { o.InlineMax, o.LeaseTimeout, o.MinFreeBytes = 0, 0, 0 })
	if q.opts.InlineMax != 0 || q.opts.LeaseTimeout != 0 || q.opts.MinFreeBytes != 0 {
		t.Fatalf("zeros replaced: %+v", q.opts)
	}
	sp := writeSpool(t, q, []byte("x\r\n"))
	if !sp.Spilled() {
		t.Error("InlineMax 0 kept a 3-byte body in memory for an inline store")
	}
	id, err := q.Enqueue(context.Background(), NewMessage{From: "a@src.test", Rcpts: []string{"b@dest.test"}, Body: []byte("Subject: tiny\r\n\r\n"), Spool: sp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(o.Path), "spool", id)); err != nil {
		t.Errorf("InlineMax 0: the body is not in the spool: %v", err)
	}
	if _, err := q.Lease(c.Now(), 10); err != nil {
		t.Fatal(err)
	}
	c.Advance(1000 * time.Hour)
	if n, _, err := q.Reclaim(c.Now(), nil); err != nil || n != 0 {
		t.Errorf("LeaseTimeout 0: Reclaim returned %d leases (%v), want none before the next Open", n, err)
	}
}
