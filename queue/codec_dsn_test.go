package queue

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"sluice/dsn"
)

// Records written by the codec before the DSN fields (issue 13 item 5),
// as main wrote them: they still read, and a record without DSN fields
// is written byte for byte as before.
const (
	oldMsgHex  = "01020a61407372632e746573740186bae2dab0c0c599319811093132372e302e302e310b636c69656e742e7465737400020100"
	oldRcptHex = "01000b7540646573742e74657374000186bae2dab0c0c5993100010f34353120342e322e31206c61746572097472616e7369656e74010186bae2dab0c0c59931106d785b3139322e302e322e315d3a32350f34353120342e322e31206c61746572097472616e7369656e74086465666572726564"
)

func TestRecordCodecDSNCompatible(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 4, 5, 6, 7, 891011, time.UTC)
	oldMsg, _ := hex.DecodeString(oldMsgHex)
	oldRcpt, _ := hex.DecodeString(oldRcptHex)
	m, err := decodeMsg(oldMsg)
	if err != nil || m.From != "a@src.test" || m.Ret != "" || m.EnvID != "" || !m.Spooled {
		t.Fatalf("old message record read as %+v, %v", m, err)
	}
	if !bytes.Equal(encodeMsg(m), oldMsg) {
		t.Error("a message record without DSN fields is not written as before")
	}
	r, err := decodeRcpt(oldRcpt)
	if err != nil || r.Addr != "u@dest.test" || r.Notify != 0 || r.ORcpt != "" || r.DelayWarned || len(r.History) != 1 || !r.NextAttempt.Equal(at) {
		t.Fatalf("old recipient record read as %+v, %v", r, err)
	}
	if !bytes.Equal(encodeRcpt(r), oldRcpt) {
		t.Error("a recipient record without DSN fields is not written as before")
	}

	// The new fields round-trip, in binary and in JSON.
	msgs := []msgRec{
		{From: "a@src.test", Received: at, NRcpt: 1, Open: 1, Ret: dsn.RetHdrs, EnvID: "env-42"},
		{From: "a@src.test", Received: at, NRcpt: 1, Open: 1, EnvID: "only-envid"},
		// REQUIRETLS (issue 14 item 5): a flag bit alone, and with the DSN fields.
		{From: "a@src.test", Received: at, NRcpt: 1, Open: 1, RequireTLS: true},
		{From: "a@src.test", Received: at, NRcpt: 1, Open: 1, Ret: dsn.RetFull, EnvID: "e", RequireTLS: true},
		// A TLS-RPT report of sluice's own (issue 14 item 4): a flag bit.
		{From: "tlsrpt@src.test", Received: at, NRcpt: 1, Open: 1, TLSReport: true},
		{From: "tlsrpt@src.test", Received: at, NRcpt: 1, Open: 1, TLSReport: true, RequireTLS: true},
	}
	for _, m := range msgs {
		got, err := decodeMsg(encodeMsg(&m))
		if err != nil || !reflect.DeepEqual(*got, m) {
			t.Errorf("message %+v read back as %+v, %v", m, got, err)
		}
		j, _ := json.Marshal(m)
		if got, err := decodeMsg(j); err != nil || got.Ret != m.Ret || got.EnvID != m.EnvID || got.RequireTLS != m.RequireTLS || got.TLSReport != m.TLSReport {
			t.Errorf("JSON message %s read as %+v, %v", j, got, err)
		}
	}
	rcpts := []rcptRec{
		{Addr: "u@dest.test", Domain: "dest.test", State: StateQueued, NextAttempt: at, Notify: dsn.NotifySuccess | dsn.NotifyDelay, ORcpt: "rfc822;orig@dest.test"},
		{Addr: "u@dest.test", Domain: "other.test", State: StateQueued, Notify: dsn.NotifyNever, DelayWarned: true,
			History: []attemptRec{{At: at, Reply: "451"}}},
		{Addr: "u@dest.test", Domain: "dest.test", State: StateSent, DelayWarned: true},
	}
	for _, r := range rcpts {
		got, err := decodeRcpt(encodeRcpt(&r))
		if err != nil || !reflect.DeepEqual(*got, r) {
			t.Errorf("recipient %+v read back as %+v, %v", r, got, err)
		}
		j, _ := json.Marshal(r)
		if got, err := decodeRcpt(j); err != nil || got.Notify != r.Notify || got.ORcpt != r.ORcpt || got.DelayWarned != r.DelayWarned {
			t.Errorf("JSON recipient %s read as %+v, %v", j, got, err)
		}
	}
	// A NOTIFY set that cannot be given, or a bad RET, is damage.
	bad := encodeRcpt(&rcptRec{Addr: "u@d", Domain: "d", State: StateQueued, Notify: dsn.NotifyNever | dsn.NotifySuccess})
	if _, err := decodeRcpt(bad); err == nil {
		t.Error("NOTIFY=NEVER,SUCCESS accepted")
	}
	if _, err := decodeMsg(encodeMsg(&msgRec{From: "a@b", Ret: "ALL"})); err == nil {
		t.Error("RET=ALL accepted")
	}
}
