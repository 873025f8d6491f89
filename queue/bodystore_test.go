package queue

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"go.etcd.io/bbolt"
)

// TestInlineBodiesPackPages (issue 10 item 4): 2 KB bodies, enqueued by
// concurrent clients as the daemon does, take at most 1.25× their size
// of pages in the bodies bucket. Stored whole, two bodies made one
// 4.6 KB node written as two pages: 4 KB per 2 KB body.
func TestInlineBodiesPackPages(t *testing.T) {
	t.Parallel()
	q, _, _ := openTest(t, func(o *Options) { o.Now, o.NoSync = nil, true })
	const n, size = 2000, 2048
	body := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ!\r\n"), size/60+1)[:size]
	var wg sync.WaitGroup
	work := make(chan struct{})
	var ids sync.Map
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				id, err := q.Enqueue(context.Background(), NewMessage{From: "s@src.test", Rcpts: []string{"r@dest.test"}, Body: body})
				if err != nil {
					t.Error(err)
					return
				}
				ids.Store(id, true)
			}
		}()
	}
	for range n {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	var alloc int
	err := q.view(func(tx *bbolt.Tx) error {
		st := tx.Bucket(bktBodies).Stats()
		alloc = st.LeafAlloc + st.BranchAlloc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	per := float64(alloc) / n
	t.Logf("%.0f bytes of pages per %d-byte body", per, size)
	if per > 1.25*size {
		t.Errorf("%.0f bytes of pages per %d-byte body, want at most %.0f", per, size, 1.25*size)
	}
	// Every body reads back whole.
	ids.Range(func(k, _ any) bool {
		got, err := bodyOf(q, k.(string))
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("body of %s: %d bytes, %v", k, len(got), err)
			return false
		}
		return true
	})
	checkInvariants(t, q)
}

// TestBodyChunksRoundTrip: bodies of every length around the chunk size,
// and the bare-ID layout of older files, read back the same through the
// queue and through the raw reader of export; deleting leaves no chunk.
func TestBodyChunksRoundTrip(t *testing.T) {
	t.Parallel()
	q, _, o := openTest(t, nil)
	sizes := []int{0, 1, bodyChunk - 1, bodyChunk, bodyChunk + 1, 2*bodyChunk + 7, 64 << 10}
	const old = "0000000000000OLD"
	oldBody := []byte("stored under its bare ID")
	err := q.write(context.Background(), func(w *wtx) error {
		for i, n := range sizes {
			if err := w.putBody(bodyID(i), bytes.Repeat([]byte{byte('a' + i)}, n)); err != nil {
				return err
			}
		}
		return w.b(bktBodies).Put([]byte(old), oldBody)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(id string, want []byte) {
		t.Helper()
		var got []byte
		var ok bool
		q.view(func(tx *bbolt.Tx) error { got, ok = storedBody(tx.Bucket(bktBodies), id); return nil })
		if !ok || !bytes.Equal(got, want) || got == nil {
			t.Errorf("body %s: %d bytes (ok %v), want %d", id, len(got), ok, len(want))
		}
	}
	for i, n := range sizes {
		check(bodyID(i), bytes.Repeat([]byte{byte('a' + i)}, n))
	}
	check(old, oldBody)
	q.Close()
	rf, err := openRaw(o.Path, 0)
	if err != nil {
		t.Fatal(err)
	}
	bb, ok, err := rf.bucket(bktBodies)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	for i, n := range sizes {
		got, ok, err := rawBody(rf, bb, bodyID(i))
		if err != nil || !ok || !bytes.Equal(got, bytes.Repeat([]byte{byte('a' + i)}, n)) {
			t.Errorf("raw body %d: %d bytes, %v, %v", i, len(got), ok, err)
		}
	}
	if got, ok, err := rawBody(rf, bb, old); err != nil || !ok || !bytes.Equal(got, oldBody) {
		t.Errorf("raw old body: %q, %v, %v", got, ok, err)
	}
	if _, ok, _ := rawBody(rf, bb, "00000000000NONE0"); ok {
		t.Error("raw body of a missing message found")
	}
	rf.Close()
	q2, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	err = q2.write(context.Background(), func(w *wtx) error {
		for i := range sizes {
			if err := w.deleteBody(bodyID(i)); err != nil {
				return err
			}
		}
		return w.deleteBody(old)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	q2.view(func(tx *bbolt.Tx) error {
		if n := tx.Bucket(bktBodies).Stats().KeyN; n != 0 {
			t.Errorf("%d body keys left after deleting every body", n)
		}
		return nil
	})
}

func bodyID(i int) string { return "00000000000BODY" + string(rune('0'+i)) }

// TestBodyOf: an in-memory body reads as a stored one does.
func TestBodyOf(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "Subject: x\r\n\r\nhi\r\n", "Subject: caf\xc3\xa9\r\n\r\n"} {
		b := BodyOf([]byte(in))
		got, err := io.ReadAll(b)
		if err != nil || string(got) != in || b.Size() != int64(len(in)) || b.Has8Bit() != strings.ContainsFunc(in, func(r rune) bool { return r >= 0x80 }) {
			t.Errorf("BodyOf(%q): read %q, %v, size %d, 8bit %v", in, got, err, b.Size(), b.Has8Bit())
		}
		b.Close()
		if _, err := b.Read(make([]byte, 1)); err == nil {
			t.Errorf("BodyOf(%q): read after Close", in)
		}
	}
}
