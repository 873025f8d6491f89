package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"sluice/dsn"
)

// FuzzParseDueKey checks that index keys parse without panicking and
// that whatever parses encodes back to the same bytes.
func FuzzParseDueKey(f *testing.F) {
	f.Add(dueKey("example.org", laneFirst, time.Unix(1700000000, 5), "0123456789ABCDEF", 3))
	f.Add(dueKey("example.org", laneRetry, time.Unix(1700000000, 5), "0123456789ABCDEF", 3))
	f.Add(dueKey("", laneFirst, time.Time{}, "0000000000000000", 0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, k []byte) {
		if d, lane, tm, id, idx, err := parseDueKey(k); err == nil {
			if got := dueKey(d, lane, tm, id, idx); !bytes.Equal(got, k) {
				t.Fatalf("due key %x round-trips to %x", k, got)
			}
		}
		if tm, id, idx, ok := parseLeaseKey(k); ok {
			if got := leaseKey(tm, id, idx); !bytes.Equal(got, k) {
				t.Fatalf("lease key %x round-trips to %x", k, got)
			}
		}
		if tm, id, err := parseDoneKey(k); err == nil {
			if got := doneKey(tm, id); !bytes.Equal(got, k) {
				t.Fatalf("done key %x round-trips to %x", k, got)
			}
		}
		if id, idx, err := parseRcptKey(k); err == nil {
			if got := rcptKey(id, idx); !bytes.Equal(got, k) {
				t.Fatalf("rcpt key %x round-trips to %x", k, got)
			}
		}
	})
}

// FuzzDecodeRecords feeds arbitrary bytes to the record decoders, as a
// damaged file would: they must return an error, never panic, and a
// recipient they accept must have a valid state.
func FuzzDecodeRecords(f *testing.F) {
	r, _ := json.Marshal(rcptRec{Addr: "a@b", Domain: "b", State: StateQueued, History: []attemptRec{{Reply: "250"}}})
	m, _ := json.Marshal(msgRec{From: "x@y", NRcpt: 2, Open: 1})
	f.Add(r)
	f.Add(m)
	f.Add(encodeRcpt(&rcptRec{Addr: "a@b", Domain: "c", State: StateQueued, NextAttempt: time.Unix(5, 6), History: []attemptRec{{Reply: "250"}}}))
	f.Add(encodeMsg(&msgRec{From: "x@y", NRcpt: 2, Open: 1, Received: time.Unix(7, 8), Spooled: true}))
	f.Add(encodeRcpt(&rcptRec{Addr: "a@b", Domain: "b", State: StateQueued, Notify: dsn.NotifySuccess | dsn.NotifyFailure,
		ORcpt: "rfc822;o@b", DelayWarned: true, History: []attemptRec{{Reply: "451"}}}))
	f.Add(encodeMsg(&msgRec{From: "x@y", NRcpt: 1, Open: 1, Ret: dsn.RetHdrs, EnvID: "e1"}))
	f.Add(encodeMsg(&msgRec{From: "x@y", NRcpt: 1, Open: 1, RequireTLS: true}))
	f.Add(encodeMsg(&msgRec{From: "x@y", NRcpt: 1, Open: 1, Ret: dsn.RetFull, RequireTLS: true}))
	f.Add([]byte{recV1, rcptDSN | rcptDelayWarned, 1, 'a', 0, 0, 0, 0, 0, 0, 0, 0x09, 0})
	f.Add([]byte{recV1, 0, 0xff})
	f.Add([]byte(`{"s":"bogus"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if rec, err := decodeRcpt(b); err == nil {
			if !rec.State.Valid() || !rec.Notify.Valid() {
				t.Fatalf("accepted state %q notify %d", rec.State, rec.Notify)
			}
			_ = rec.public()
			if len(b) > 0 && b[0] == recV1 {
				// What the codec reads it writes back the same way.
				if again, err := decodeRcpt(encodeRcpt(rec)); err != nil || !reflect.DeepEqual(again, rec) {
					t.Fatalf("recipient %+v does not round-trip: %+v, %v", rec, again, err)
				}
			}
		}
		if rec, err := decodeMsg(b); err == nil {
			_ = rec.public("0123456789ABCDEF", nil)
			if len(b) > 0 && b[0] == recV1 {
				if again, err := decodeMsg(encodeMsg(rec)); err != nil || !reflect.DeepEqual(again, rec) {
					t.Fatalf("message %+v does not round-trip: %+v, %v", rec, again, err)
				}
			}
		}
	})
}

// FuzzDomainOf checks the recipient domain rule: lower-case text after
// the last '@'.
func FuzzDomainOf(f *testing.F) {
	for _, s := range []string{"a@B.test", `"x@y"@Z`, "nodomain", "@", "a@"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		d := domainOf(addr)
		if bytes.ContainsRune([]byte(d), '@') {
			t.Fatalf("domainOf(%q) = %q contains @", addr, d)
		}
		if d != "" && !bytes.HasSuffix(bytes.ToLower([]byte(addr)), []byte(d)) {
			t.Fatalf("domainOf(%q) = %q is not a suffix", addr, d)
		}
	})
}

// FuzzIsNoSpace checks the storage error classifier on arbitrary error
// text: it must not panic and must agree with storageErr.
func FuzzIsNoSpace(f *testing.F) {
	f.Add("write /q.db: no space left on device")
	f.Add("file resize error: disk quota exceeded")
	f.Add("input/output error")
	f.Add("open /q.db: read-only file system")
	f.Add("write /q.db: permission denied")
	f.Fuzz(func(t *testing.T, msg string) {
		err := errors.New(msg)
		got := storageErr("x", err)
		if isNoSpace(err) != errors.Is(got, ErrNoSpace) {
			t.Fatalf("classifier and storageErr disagree on %q", msg)
		}
		if want := !isNoSpace(err) && isUnwritable(err); want != errors.Is(got, ErrUnwritable) {
			t.Fatalf("unwritable classifier and storageErr disagree on %q", msg)
		}
	})
}
