// Package events delivers the delivery events of the queue's outbox
// (queue/events.go) to the configured sinks: signed webhooks and a
// JSON-lines file or stdout. Each sink reads the outbox from its own
// cursor and moves it once the events are delivered: delivery is at
// least once, and an event's ID never changes, so receivers dedupe on
// it. Sinks never touch the delivery path: they read the outbox and
// acknowledge; a dead endpoint only lets the outbox grow, up to
// events.max_bytes.
package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries the signature of a webhook POST:
//
//	Sluice-Signature: t=1764460800,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//
// t is the Unix time of the POST (seconds) and v1 the hex HMAC-SHA256,
// keyed with the webhook's secret, of the string t + "." + the raw
// request body, as Stripe signs its webhooks. To verify, a receiver
// recomputes the HMAC over the same string from the raw body (before
// any JSON parsing), compares in constant time, and rejects a t too far
// from its clock (5 minutes) against replays. More v1 values may be
// given (during a secret rotation); any match is valid.
const SignatureHeader = "Sluice-Signature"

// Sign returns the value of SignatureHeader for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// ErrBadSignature is returned by Verify.
var ErrBadSignature = errors.New("events: bad webhook signature")

// Verify checks a SignatureHeader value for body against secret, with
// the timestamp within tolerance of now. It is what a Go receiver would
// run (and what `sluice events` tests check against an independent
// implementation).
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(n, 0)); d > tolerance || d < -tolerance {
		return ErrBadSignature
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return ErrBadSignature
}
