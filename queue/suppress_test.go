package queue

import (
	"testing"

	"go.etcd.io/bbolt"
)

// TestSuppressionKeysCanonical: the suppression list is keyed on the
// canonical address (package mailbox), the same form the inbound side
// stores: needless quotes do not hide an address, and a quoted '@' is
// part of the local part, not a second address.
func TestSuppressionKeysCanonical(t *testing.T) {
	t.Parallel()
	q, _, o := openTest(t, nil)
	for _, a := range []string{`"John"@Example.org`, `"Jane@Doe"@example.org`, `""@example.org`} {
		if err := q.Suppress(a, "test"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"john@example.org", true},
		{`"john"@EXAMPLE.ORG`, true},
		{`"jane@doe"@example.org`, true},
		{`"jane\@doe"@example.org`, true},
		{"jane@example.org", false},
		{"doe@example.org", false},
		{`""@example.org`, true},
	} {
		if got := q.IsSuppressed(tc.addr); got != tc.want {
			t.Errorf("IsSuppressed(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if ok, err := q.Unsuppress("JOHN@example.org"); !ok || err != nil {
		t.Fatalf("Unsuppress = %v %v", ok, err)
	}
	// A key written before keys were canonical still matches.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(o.Path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bktSuppress).Put([]byte(`"carol"@example.org`), []byte(`{"Addr":"\"carol\"@example.org","Reason":"old"}`))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	q, err = Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if !q.IsSuppressed("carol@example.org") || q.IsSuppressed("john@example.org") {
		t.Error("legacy key not matched after reopen, or removed key back")
	}
	if ok, err := q.Unsuppress("carol@example.org"); !ok || err != nil {
		t.Fatalf("Unsuppress(legacy) = %v %v", ok, err)
	}
	if q.IsSuppressed("carol@example.org") {
		t.Error("legacy key still matches after Unsuppress")
	}
}

// OnSuppress tells a cluster of each committed suppression (issue 15), in
// the caller, after the commit; a failed one is not told.
func TestOnSuppressHook(t *testing.T) {
	t.Parallel()
	q, _, _ := openTest(t, nil)
	var got []string
	q.OnSuppress(func(addr, reason string) { got = append(got, addr+"|"+reason) })
	if err := q.Suppress("bob@example.org", "5.1.1"); err != nil {
		t.Fatal(err)
	}
	if err := q.Suppress(" ", "x"); err == nil {
		t.Fatal("empty address suppressed")
	}
	if len(got) != 1 || got[0] != "bob@example.org|5.1.1" {
		t.Fatalf("hook calls %q", got)
	}
}
