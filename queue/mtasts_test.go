package queue

import (
	"bytes"
	"testing"
)

// TestSTSPolicyStore: the MTA-STS cache's bucket keeps a policy across a
// reopen and forgets it on delete (issue 14 item 2).
func TestSTSPolicyStore(t *testing.T) {
	t.Parallel()
	q, _, o := openTest(t, nil)
	if v, err := q.LoadSTSPolicy("example.com"); err != nil || v != nil {
		t.Fatalf("empty store: %q, %v", v, err)
	}
	if err := q.SaveSTSPolicy("example.com", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q2.Close() })
	if v, err := q2.LoadSTSPolicy("example.com"); err != nil || !bytes.Equal(v, []byte(`{"v":1}`)) {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
	if err := q2.DeleteSTSPolicy("example.com"); err != nil {
		t.Fatal(err)
	}
	if v, _ := q2.LoadSTSPolicy("example.com"); v != nil {
		t.Fatalf("after delete: %q", v)
	}
	if err := q2.SaveSTSPolicy("", nil); err == nil {
		t.Error("an empty domain was stored")
	}
}

// TestPruneSTSPolicies: the entries the predicate calls expired go.
func TestPruneSTSPolicies(t *testing.T) {
	t.Parallel()
	q, _, _ := openTest(t, nil)
	for _, d := range []string{"old.test", "new.test", "old2.test"} {
		if err := q.SaveSTSPolicy(d, []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := q.PruneSTSPolicies(func(v []byte) bool { return bytes.HasPrefix(v, []byte("old")) })
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v; want 2", n, err)
	}
	if v, _ := q.LoadSTSPolicy("new.test"); v == nil {
		t.Error("an unexpired policy was pruned")
	}
	if v, _ := q.LoadSTSPolicy("old.test"); v != nil {
		t.Error("an expired policy stayed")
	}
}
