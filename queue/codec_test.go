package queue

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestRecordCodecRoundTrip (issue 10 item 4): the binary records read
// back as written, every field; a domain that is not the address's is
// kept; JSON records of earlier versions still read; and the binary form
// of a queued message's records is well under half the JSON one.
func TestRecordCodecRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 4, 5, 6, 7, 891011, time.UTC)
	msgs := []msgRec{
		{From: "a@src.test", Received: at, Size: 2200, ClientAddr: "127.0.0.1", Helo: "client.test", NRcpt: 1, Open: 1},
		{From: "", Received: at, Size: 1 << 40, User: "u", SMTPUTF8: true, Spooled: true, EightBit: true, NRcpt: 3, Done: at.Add(time.Hour)},
	}
	for _, m := range msgs {
		got, err := decodeMsg(encodeMsg(&m))
		if err != nil || !reflect.DeepEqual(*got, m) {
			t.Errorf("message %+v read back as %+v, %v", m, got, err)
		}
	}
	rcpts := []rcptRec{
		{Addr: "user1@dest.test", Domain: "dest.test", State: StateQueued, NextAttempt: at},
		{Addr: `"x@y"@Dest.TEST`, Domain: "dest.test", State: StateActive, LeaseUntil: at.Add(time.Hour), Attempts: 3,
			LastReply: "421 4.7.0 slow down", LastClass: "throttle",
			History: []attemptRec{{At: at, Relay: "mx[192.0.2.1]:25", Reply: "421 4.7.0 slow down", Class: "throttle", Status: "deferred"}, {At: at.Add(time.Minute)}}},
		{Addr: "odd@a.test", Domain: "b.test", State: StateDeleted},
	}
	for _, r := range rcpts {
		got, err := decodeRcpt(encodeRcpt(&r))
		if err != nil || !reflect.DeepEqual(*got, r) {
			t.Errorf("recipient %+v read back as %+v, %v", r, got, err)
		}
	}
	// Earlier versions' JSON.
	for _, r := range rcpts {
		j, _ := json.Marshal(r)
		if got, err := decodeRcpt(j); err != nil || got.Addr != r.Addr || got.State != r.State || !got.NextAttempt.Equal(r.NextAttempt) {
			t.Errorf("JSON recipient %s read as %+v, %v", j, got, err)
		}
	}
	j, _ := json.Marshal(msgs[0])
	if got, err := decodeMsg(j); err != nil || got.From != msgs[0].From || !got.Received.Equal(at) {
		t.Errorf("JSON message %s read as %+v, %v", j, got, err)
	}
	// Size.
	jm, _ := json.Marshal(msgs[0])
	jr, _ := json.Marshal(rcpts[0])
	bin := len(encodeMsg(&msgs[0])) + len(encodeRcpt(&rcpts[0]))
	if js := len(jm) + len(jr); bin*2 > js {
		t.Errorf("binary records %d bytes, JSON %d: want less than half", bin, js)
	}
	t.Logf("a queued message's records: %d bytes binary, %d JSON", bin, len(jm)+len(jr))
	// Damage is an error, never a panic or a huge allocation.
	for _, b := range [][]byte{{recV1}, {recV1, 0, 200}, append(encodeRcpt(&rcpts[0]), 0), {recV1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}} {
		if _, err := decodeRcpt(b); err == nil {
			t.Errorf("damaged recipient %x accepted", b)
		}
		if _, err := decodeMsg(b); err == nil {
			t.Errorf("damaged message %x accepted", b)
		}
	}
}
