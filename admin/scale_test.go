package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/queue"
)

// readAll runs every operator read once: status, summary, domains, the
// dashboard (both surfaces), /metrics, and three listings of a page.
func readAll(t *testing.T, f *fixture) {
	t.Helper()
	if _, err := f.client.Status(ctx()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Summary(ctx()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Domains(ctx()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Dashboard(ctx()); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/metrics", "/v1/dashboard"} {
		if rec := httptestGet(t, f.srv.HTTPHandler("127.0.0.1:8025"), path); rec.Code != http.StatusOK {
			t.Fatalf("%s = %d", path, rec.Code)
		}
	}
	for _, q := range []ListQuery{{Limit: 20}, {Domain: "b.test", Limit: 20}, {State: "held", Limit: 20}, {Domain: "a.test", State: "queued", Limit: 20}} {
		msgs, err := f.client.List(ctx(), q)
		if err != nil || len(msgs) != 20 {
			t.Fatalf("List(%+v) = %d, %v", q, len(msgs), err)
		}
	}
}

// TestAdminReadCostIndependentOfQueueSize: the operator reads touch the
// same number of records with 120 messages in the queue as with 2,520,
// 1,220 of them finished: they read counters and index pages, never the
// messages. (Counted, not timed: see queue.RecordsRead.)
func TestAdminReadCostIndependentOfQueueSize(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	domains := []string{"a.test", "b.test", "c.test"}
	fill := func(n int) []string {
		var ids []string
		for i := range n {
			ids = append(ids, f.enqueue(t, "s@src.test", fmt.Sprintf("r%d@%s", i, domains[i%3]), fmt.Sprintf("x%d@%s", i, domains[(i+1)%3])))
		}
		return ids
	}
	// finish defers every recipient in flight, and sends those of
	// the messages in sent.
	finish := func(sent []string) {
		t.Helper()
		items, err := f.q.Lease(f.clk.Now(), 10000)
		if err != nil {
			t.Fatal(err)
		}
		in := map[string]bool{}
		for _, id := range sent {
			in[id] = true
		}
		var ups []queue.Update
		for _, it := range items {
			u := queue.Update{ID: it.ID, Rcpt: it.Rcpt, State: queue.StateQueued, NextAttempt: f.clk.Now().Add(time.Hour)}
			if in[it.ID] {
				u.State = queue.StateSent
			}
			ups = append(ups, u)
		}
		if err := f.q.Update(ctx(), ups); err != nil {
			t.Fatal(err)
		}
	}
	first := fill(120)
	if _, err := f.q.Hold(first[:60]); err != nil {
		t.Fatal(err)
	}
	finish(first[100:])
	cost := func() uint64 {
		before := f.q.RecordsRead()
		readAll(t, f)
		return f.q.RecordsRead() - before
	}
	small := cost()

	// Twenty times as much mail, half of it finished and retained.
	more := fill(2400)
	finish(more[:1200])
	large := cost()
	if large != small {
		t.Errorf("the reads touched %d records with 120 messages, %d with 2,520", small, large)
	}
	if small > 400 {
		t.Errorf("the reads touched %d records; a page of 20 and the counters of 3 domains need far fewer", small)
	}
}

// TestAdminReadsDoNotWaitForTheWriter: while the queue's only writer is
// busy inside a transaction, every operator read still answers: none
// goes through the group commit.
func TestAdminReadsDoNotWaitForTheWriter(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for i := range 50 {
		f.enqueue(t, "s@src.test", fmt.Sprintf("r%d@a.test", i), fmt.Sprintf("r%d@b.test", i))
	}
	msgs, _ := f.q.List(queue.Filter{Limit: 50})
	var held []string
	for _, m := range msgs[:25] {
		held = append(held, m.ID)
	}
	if _, err := f.q.Hold(held); err != nil {
		t.Fatal(err)
	}
	// Bounce runs its DSN builder inside the commit goroutine's
	// transaction: blocking it there holds the writer.
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := f.q.Bounce(held[:1], queue.Attempt{Reply: "x"}, func(*queue.Message, []int) (*queue.NewMessage, error) {
			close(inside)
			<-release
			return nil, nil
		})
		done <- err
	}()
	<-inside
	reads := make(chan struct{})
	go func() {
		defer close(reads)
		readAll(t, f)
	}()
	select {
	case <-reads:
	case <-time.After(30 * time.Second):
		t.Error("an operator read waited for the writer")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestBulkDeleteInterleavesWithEnqueue: `queue delete --domain` works in
// pages, each its own commit, so new mail commits between them; the
// delete reports progress, covers the mail queued when it began, and the
// summary is exact right after it, with no recount.
func TestBulkDeleteInterleavesWithEnqueue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const n = 3*queue.BulkPage + 7
	for i := range n {
		f.enqueue(t, "s@src.test", fmt.Sprintf("r%d@dest.test", i))
	}
	f.enqueue(t, "s@src.test", "keep@other.test")
	var pages int
	var mu sync.Mutex
	res, err := f.srv.act(context.Background(), "delete", Selection{Domain: "DEST.test"}, func(r Result) {
		pages++
		if pages != 1 {
			return
		}
		// In the middle of the delete: new mail from other clients
		// commits while it is still running.
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := f.q.Enqueue(ctx(), queue.NewMessage{From: "s@src.test", Rcpts: []string{fmt.Sprintf("new%d@dest.test", i)}, Body: []byte("x\r\n")})
				if err != nil {
					mu.Lock()
					t.Errorf("enqueue during the delete: %v", err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if r.Changed != queue.BulkPage {
			t.Errorf("first progress = %+v, want %d", r, queue.BulkPage)
		}
	})
	if err != nil || res.Changed != n {
		t.Fatalf("delete = %+v, %v; want %d", res, err, n)
	}
	if pages != 4 {
		t.Errorf("%d pages of progress, want 4", pages)
	}
	sum, err := f.client.Summary(ctx())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range sum.Rows {
		got[r.Domain] = r.Total
	}
	if sum.Total.Total != 5 || got["dest.test"] != 4 || got["other.test"] != 1 {
		t.Errorf("summary right after the delete = %+v, want 4 new at dest.test and 1 at other.test", sum)
	}
	st, _ := f.client.Status(ctx())
	if st.Queue["deleted"] != n || st.Queue["queued"] != 5 {
		t.Errorf("status after the delete = %v", st.Queue)
	}
}

// TestBulkProgressStreams: over the API, a bulk action streams a line of
// progress per page, then its result.
func TestBulkProgressStreams(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for i := range queue.BulkPage + 1 {
		f.enqueue(t, "s@src.test", fmt.Sprintf("r%d@dest.test", i))
	}
	var progress []int
	res, err := f.client.ActProgress(ctx(), "hold", Selection{Domain: "dest.test"}, func(r Result) { progress = append(progress, r.Changed) })
	if err != nil || res.Changed != queue.BulkPage+1 {
		t.Fatalf("hold = %+v, %v", res, err)
	}
	if len(progress) != 2 || progress[0] != queue.BulkPage || progress[1] != queue.BulkPage+1 {
		t.Errorf("progress = %v", progress)
	}
	// A request that fails before any work is still a plain error.
	var ae *APIError
	if _, err := f.client.ActProgress(ctx(), "explode", Selection{Domain: "dest.test"}, nil); !errors.As(err, &ae) || ae.Status != 400 {
		t.Errorf("unknown action = %v", err)
	}
	// A flush streams too: everything is held, nothing to flush.
	if r, err := f.client.FlushProgress(ctx(), FlushRequest{Domain: "dest.test"}, nil); err != nil || r.Changed != 0 {
		t.Errorf("flush = %+v, %v", r, err)
	}
}

// TestListStreamsPastTheReplyCap: a listing far larger than the cap on a
// reply read whole streams through the client in full, in ID order, and
// pages with --limit/--after.
func TestListStreamsPastTheReplyCap(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var ids []string
	for i := range 2*listPage + 10 {
		ids = append(ids, f.enqueue(t, "s@src.test", fmt.Sprintf("r%d@dest.test", i)))
	}
	f.client.maxReply = 16 << 10 // the old 64 MB cap, scaled to the test
	// A reply read whole fails at the cap...
	var whole []Message
	if err := f.client.do(ctx(), http.MethodGet, "/v1/queue", nil, &whole); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("a whole reply over the cap = %v", err)
	}
	// ...the stream does not.
	var got []string
	end, err := f.client.ListEach(ctx(), ListQuery{Domain: "dest.test"}, func(m Message) error {
		got = append(got, m.ID)
		return nil
	})
	if err != nil || len(got) != len(ids) || end.Messages != len(ids) || end.More {
		t.Fatalf("streamed %d of %d, end %+v, %v", len(got), len(ids), end, err)
	}
	for i := range ids {
		if got[i] != ids[i] {
			t.Fatalf("message %d is %s, want %s", i, got[i], ids[i])
		}
	}
	// Pages: --limit then --after the announced next ID.
	var paged []string
	after := ""
	for {
		end, err := f.client.ListEach(ctx(), ListQuery{Limit: 100, After: after}, func(m Message) error {
			paged = append(paged, m.ID)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !end.More {
			break
		}
		after = end.Next
	}
	if len(paged) != len(ids) || paged[len(paged)-1] != ids[len(ids)-1] {
		t.Errorf("paged %d messages, want %d", len(paged), len(ids))
	}
	// A stream that stops before its end line is an error, not a list.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ndjson)
		io.WriteString(w, `{"message":{"id":"A"}}`+"\n")
	}))
	defer srv.Close()
	c := NewClient(srv.Listener.Addr().String(), "")
	if _, err := c.List(ctx(), ListQuery{}); err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("a truncated stream = %v", err)
	}
}
