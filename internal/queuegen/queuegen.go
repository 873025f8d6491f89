// Package queuegen writes a synthetic queue export stream (the JSON-lines
// format of `sluice queue export`, docs/operations.md) of deferred
// messages, for building a large backlog offline with `sluice queue
// import`: the scale bench (bench/scale.sh) and its SMALL test fill a
// queue with 100,000 or 1,000,000 messages this way in seconds, where SMTP
// would take minutes. What it writes is what an export of a real deferred
// queue holds: one open recipient per message with one failed attempt,
// due again within a window.
package queuegen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Options describe the messages of one stream.
type Options struct {
	N     int // messages
	First int // number of the first message: streams for one queue must not overlap
	// Size is the body size in bytes (headers included), at least 200.
	Size int
	// To is the recipient; a %d in it is replaced by the message number
	// modulo Wrap (or the message number when Wrap is 0).
	To   string
	Wrap int
	From string
	// Now is the clock of the stream: received times are spread over the
	// Spread before it.
	Now    time.Time
	Spread time.Duration
	// DueAfter and Due: recipient i is due at Now + DueAfter + a share
	// of Due; DueAfter = Due = 0 means due now.
	DueAfter, Due time.Duration
	// LastReply is the reply of the failed attempt ("" = never tried).
	LastReply string
}

// idAlphabet and the layout (9 base-32 digits of milliseconds, 7 of a
// counter) are those of queue IDs, which import validates.
const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUV"

// ID is the queue ID of message n, received at t.
func ID(t time.Time, n int) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	for i := 8; i >= 0; i-- {
		b[i] = idAlphabet[ms&31]
		ms >>= 5
	}
	c := uint64(n)
	for i := 15; i >= 9; i-- {
		b[i] = idAlphabet[c&31]
		c >>= 5
	}
	return string(b[:])
}

type rcpt struct {
	Addr        string    `json:"addr"`
	State       string    `json:"state"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	Attempts    int       `json:"attempts,omitempty"`
	LastReply   string    `json:"last_reply,omitempty"`
}

type message struct {
	Type       string    `json:"type"`
	ID         string    `json:"id"`
	From       string    `json:"from"`
	Received   time.Time `json:"received"`
	Recipients []rcpt    `json:"recipients"`
	Size       int       `json:"size"`
	Body       []byte    `json:"body"`
}

// Write writes the whole stream (header, N messages, end record) to w.
// An ID embeds the message's received time, as queue IDs do (the queue
// finds its oldest message by the lowest ID), and the message number in
// the counter digits: streams with different numbers never collide.
func Write(w io.Writer, o Options) error {
	if o.Size < 200 {
		return fmt.Errorf("queuegen: size %d: want at least 200", o.Size)
	}
	if o.N < 0 || o.First < 0 {
		return fmt.Errorf("queuegen: negative count")
	}
	if n := strings.Count(o.To, "%"); n > 1 || n == 1 && !strings.Contains(o.To, "%d") {
		return fmt.Errorf("queuegen: recipient %q: at most one %%d", o.To)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	enc := json.NewEncoder(bw)
	now := o.Now.UTC().Truncate(time.Millisecond)
	// The header of an export: no time or source (an export is a function
	// of the queue's content alone).
	if _, err := bw.WriteString(`{"type":"header","format":"sluice-queue","version":1}` + "\n"); err != nil {
		return err
	}
	filler := strings.Repeat("The quick brown fox jumps over the lazy dog, again and again. 0123456\r\n", o.Size/70+1)
	attempts := 0
	if o.LastReply != "" {
		attempts = 1
	}
	for i := o.First; i < o.First+o.N; i++ {
		to := o.To
		if strings.Contains(to, "%d") {
			k := i
			if o.Wrap > 0 {
				k = i % o.Wrap
			}
			to = fmt.Sprintf(to, k)
		}
		received := now.Add(-share(o.Spread, i))
		id := ID(received, i)
		head := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: queuegen %d\r\nMessage-ID: <%s@queuegen.test>\r\nMIME-Version: 1.0\r\n\r\n", o.From, to, i, id)
		if len(head)+2 > o.Size {
			return fmt.Errorf("queuegen: size %d is smaller than the headers of message %d", o.Size, i)
		}
		body := []byte(head + filler[:o.Size-len(head)-2] + "\r\n")
		m := message{Type: "message", ID: id, From: o.From, Received: received,
			Recipients: []rcpt{{Addr: to, State: "queued", Attempts: attempts, LastReply: o.LastReply}},
			Size:       len(body), Body: body}
		if o.DueAfter > 0 || o.Due > 0 {
			m.Recipients[0].NextAttempt = now.Add(o.DueAfter + share(o.Due, i))
		}
		if err := enc.Encode(m); err != nil {
			return err
		}
	}
	if err := enc.Encode(map[string]any{"type": "end", "messages": o.N, "suppressions": 0, "destinations": 0, "lost": 0}); err != nil {
		return err
	}
	return bw.Flush()
}

// share is message i's part of d: one of 1,000 steps, scattered by a
// multiplicative hash so that any run of messages covers the whole of d
// whatever the stream's size.
func share(d time.Duration, i int) time.Duration {
	if d <= 0 {
		return 0
	}
	return d / 1000 * time.Duration((i*7919)%1000)
}
