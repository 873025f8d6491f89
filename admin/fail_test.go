package admin

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"sluice/queue"
)

// TestFailKeepsStorageClass: a storage failure under an operator action
// keeps its class across the API (issue 9 item 15: a full disk during
// `suppress add` was a 400, as if the operator had typed badly).
func TestFailKeepsStorageClass(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		err  error
		want int
	}{
		{fmt.Errorf("queue: commit: %w: write queue.db: no space left on device", queue.ErrNoSpace), http.StatusInsufficientStorage},
		{fmt.Errorf("queue: commit: %w: read-only file system", queue.ErrUnwritable), http.StatusServiceUnavailable},
		{fmt.Errorf("%w: empty address", errBadRequest), http.StatusBadRequest},
		{queue.ErrNotFound, http.StatusNotFound},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		f.srv.fail(rec, "suppress add", tc.err)
		if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.err.Error()) {
			t.Errorf("%v: %d %s, want %d with the reason", tc.err, rec.Code, rec.Body.String(), tc.want)
		}
	}
}
