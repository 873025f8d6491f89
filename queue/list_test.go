package queue

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// bruteList is List by reading every message: the reference the index
// is checked against.
func bruteList(t *testing.T, q *Queue, f Filter, now time.Time) []string {
	t.Helper()
	all, err := q.List(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range all {
		if f.OlderThan > 0 && !m.Received.Before(now.Add(-f.OlderThan)) {
			continue
		}
		if m.ID > f.After && matches(&m, f.Domain, f.State) {
			out = append(out, m.ID)
		}
	}
	return out
}

// TestListPaging: every filter, paged with every page size through
// After, returns exactly what a full scan selects, in ID order, each
// message once.
func TestListPaging(t *testing.T) {
	t.Parallel()
	q, c, _ := openTest(t, nil)
	r := rand.New(rand.NewPCG(7, 7))
	domains := []string{"a.test", "b.test", "c.test"}
	var ids []string
	for i := range 60 {
		var rcpts []string
		for j := range 1 + r.IntN(4) {
			rcpts = append(rcpts, fmt.Sprintf("u%d.%d@%s", i, j, domains[r.IntN(len(domains))]))
		}
		ids = append(ids, enqueue(t, q, rcpts...))
		c.Advance(time.Duration(r.IntN(300)) * time.Second)
	}
	items, _ := q.Lease(c.Now(), 80)
	var ups []Update
	for _, it := range items {
		switch r.IntN(5) {
		case 0:
			ups = append(ups, Update{ID: it.ID, Rcpt: it.Rcpt, State: StateSent})
		case 1:
			ups = append(ups, Update{ID: it.ID, Rcpt: it.Rcpt, State: StateBounced})
		case 2:
			ups = append(ups, Update{ID: it.ID, Rcpt: it.Rcpt, State: StateQueued, NextAttempt: c.Now().Add(time.Hour)})
		case 3: // stays active
		default:
			ups = append(ups, Update{ID: it.ID, Rcpt: it.Rcpt, State: StateExpired})
		}
	}
	update(t, q, ups...)
	if _, err := q.Hold(ids[10:20]); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Delete(ids[30:33]); err != nil {
		t.Fatal(err)
	}
	var filters []Filter
	for _, d := range append([]string{"", "nope.test", "B.TEST"}, domains...) {
		for _, s := range append([]State{""}, AllStates...) {
			filters = append(filters, Filter{Domain: d, State: s})
		}
	}
	filters = append(filters, Filter{OlderThan: time.Hour}, Filter{Domain: "a.test", OlderThan: 2 * time.Hour}, Filter{State: StateQueued, OlderThan: 30 * time.Minute})
	for _, f := range filters {
		want := bruteList(t, q, Filter{Domain: lower(f.Domain), State: f.State, OlderThan: f.OlderThan}, c.Now())
		for _, size := range []int{0, 1, 3, 7} {
			var got []string
			after := ""
			for pages := 0; ; pages++ {
				ff := f
				ff.After, ff.Limit = after, size
				ms, err := q.List(ff)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range ms {
					got = append(got, m.ID)
				}
				if size == 0 || len(ms) < size {
					break
				}
				after = ms[len(ms)-1].ID
				if pages > 100 {
					t.Fatalf("%+v: paging does not end", f)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%+v pages of %d: %v\nwant %v", f, size, got, want)
			}
		}
	}
	// A page starting in the middle: After need not be an ID in the
	// selection.
	ms, err := q.List(Filter{After: ids[5][:10], Limit: 2})
	if err != nil || len(ms) != 2 || ms[0].ID != ids[5] {
		t.Errorf("List after a prefix of %s = %v, %v", ids[5], ms, err)
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// TestDomainPagesEndsWhileMailArrives: a bulk operation over a domain
// covers the mail queued when it began, in pages of the given size, and
// ends even though every page brings new mail for the same domain.
func TestDomainPagesEndsWhileMailArrives(t *testing.T) {
	t.Parallel()
	q, _, _ := openTest(t, nil)
	for range 25 {
		enqueue(t, q, "x@d.test")
	}
	var pages, deleted int
	err := q.DomainPages(context.Background(), "D.test", 10, func(ids []string) error {
		pages++
		if len(ids) > 10 {
			t.Errorf("page of %d", len(ids))
		}
		n, err := q.Delete(ids)
		deleted += n
		enqueue(t, q, "new@d.test")
		return err
	})
	if err != nil || pages != 3 || deleted != 25 {
		t.Fatalf("DomainPages = %v after %d pages, %d deleted", err, pages, deleted)
	}
	cnt, _ := q.DomainCounts(time.Now(), nil)
	if len(cnt) != 1 || cnt[0].States[StateQueued] != 3 || cnt[0].States[StateDeleted] != 25 {
		t.Fatalf("counts after = %+v", cnt)
	}
	checkInvariants(t, q)
}
