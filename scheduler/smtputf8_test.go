package scheduler

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"sluice/internal/fakemx"
	"sluice/queue"
	"sluice/relay/outbound"
	"sluice/reply"
)

// Whether a delivery asks for SMTPUTF8 is decided by the envelope (issue 9
// item 4): the SMTPUTF8 parameter the client gave at MAIL, stored with the
// message, or a non-ASCII address. Raw UTF-8 in a header alone does not
// ask for it: such a message goes with BODY=8BITMIME, or as is to a 7-bit
// peer, as Postfix sends it.
func TestSMTPUTF8FromTheEnvelope(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	got := map[string]bool{} // first recipient -> Delivery.SMTPUTF8
	out := &scriptOutbound{send: func(_ context.Context, _ *scriptSession, d *outbound.Delivery) []reply.Reply {
		mu.Lock()
		got[d.Rcpts[0]] = d.SMTPUTF8
		mu.Unlock()
		return sameReply(reply.Reply{Stage: reply.StageDataEnd, Code: 250}, len(d.Rcpts))
	}}
	r := newScriptRig(t, out, nil)
	tests := []struct {
		name, from, rcpt, subject string
		flag, want                bool
	}{
		{"UTF-8 header, no SMTPUTF8 at MAIL", "app@src.test", "a@dest.test", "Caf\u00e9 cr\u00e8me", false, false},
		// net/smtp asks for SMTPUTF8 whenever it is offered: an ASCII
		// message that asked needs nothing (Postfix delivers it too).
		{"SMTPUTF8 at MAIL, ASCII everywhere", "app@src.test", "b@dest.test", "plain", true, false},
		{"SMTPUTF8 at MAIL and a UTF-8 header", "app@src.test", "c@dest.test", "\u00fcber", true, true},
		{"UTF-8 recipient without the flag (a DSN)", "", "j\u00f6rg@dest.test", "plain", false, true},
		{"UTF-8 sender without the flag", "\u00e9t\u00e9@src.test", "d@dest.test", "plain", false, true},
	}
	for _, tt := range tests {
		body := fmt.Sprintf("From: x@src.test\r\nSubject: %s\r\n\r\nhello\r\n", tt.subject)
		if _, err := r.q.Enqueue(context.Background(), queue.NewMessage{From: tt.from, Rcpts: []string{tt.rcpt}, Body: []byte(body), SMTPUTF8: tt.flag}); err != nil {
			t.Fatal(err)
		}
	}
	r.sched.Kick()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == len(tests) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d delivered", n, len(tests))
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, tt := range tests {
		if got[tt.rcpt] != tt.want {
			t.Errorf("%s: Delivery.SMTPUTF8 = %v, want %v", tt.name, got[tt.rcpt], tt.want)
		}
	}
}

// The same through the real outbound client: a message with raw UTF-8 in
// its Subject, submitted without SMTPUTF8, reaches a receiver that offers
// no SMTPUTF8, with or without 8BITMIME. The old scheduler guessed
// SMTPUTF8 from the header bytes and the relay bounced it with 553 5.6.7.
func TestUTF8HeaderWithoutSMTPUTF8IsDelivered(t *testing.T) {
	for _, sevenBit := range []bool{false, true} {
		t.Run(fmt.Sprintf("7bit=%v", sevenBit), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, fakemx.Options{NoSMTPUTF8: true, No8BitMIME: sevenBit, KeepBodies: true}, nil)
			body := "From: <app@src.test>\r\nTo: <u@dest.test>\r\nSubject: Caf\u00e9 \u2014 cr\u00e8me br\u00fbl\u00e9e\r\nMessage-ID: <utf8@src.test>\r\n\r\nhello\r\n"
			if _, err := h.q.Enqueue(context.Background(), queue.NewMessage{From: "app@src.test", Rcpts: []string{"u@dest.test"}, Body: []byte(body)}); err != nil {
				t.Fatal(err)
			}
			h.sched.Kick()
			h.waitDelivered(1, 10*time.Second)
			if rb := h.mx.Received(); len(rb) != 1 || string(rb[0]) != body {
				t.Errorf("received %q, want the message unchanged (no down-conversion)", rb)
			}
		})
	}
}

// headerHas8Bit looks at the header section only, across reads of any
// size, and gives back every byte it read.
func TestHeaderHas8Bit(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("X-Pad: "+strings.Repeat("a", 70)+"\r\n", 200) // > one 4 KiB read
	tests := []struct {
		name, msg string
		want      bool
	}{
		{"ASCII header, UTF-8 body", "Subject: hi\r\n\r\ncaf\u00e9\r\n", false},
		{"UTF-8 header", "Subject: caf\u00e9\r\n\r\nhello\r\n", true},
		{"UTF-8 header after a long one", long + "Subject: caf\u00e9\r\n\r\nx\r\n", true},
		{"long ASCII header, UTF-8 body", long + "\r\ncaf\u00e9\r\n", false},
		{"headers only, UTF-8", "Subject: caf\u00e9\r\n", true},
		{"headers only, ASCII", "Subject: hi\r\n", false},
		{"no header fields", "\r\ncaf\u00e9\r\n", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		for _, rd := range []struct {
			name string
			r    func(string) io.Reader
		}{
			{"whole", func(s string) io.Reader { return strings.NewReader(s) }},
			{"one byte", func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) }},
		} {
			got, r, err := headerHas8Bit(rd.r(tt.msg))
			if err != nil {
				t.Fatalf("%s/%s: %v", tt.name, rd.name, err)
			}
			back, _ := io.ReadAll(r)
			if got != tt.want || string(back) != tt.msg {
				t.Errorf("%s/%s: %v (want %v), gave back %d of %d bytes", tt.name, rd.name, got, tt.want, len(back), len(tt.msg))
			}
		}
	}
}

func FuzzHeaderHas8Bit(f *testing.F) {
	f.Add([]byte("Subject: caf\xc3\xa9\r\n\r\nbody\r\n"), uint8(3))
	f.Add([]byte("A: b\r\n\r\n\xff"), uint8(1))
	f.Fuzz(func(t *testing.T, msg []byte, step uint8) {
		var r io.Reader = bytes.NewReader(msg)
		if step%2 == 1 {
			r = iotest.OneByteReader(r)
		}
		got, back, err := headerHas8Bit(r)
		if err != nil {
			t.Fatal(err)
		}
		all, _ := io.ReadAll(back)
		if !bytes.Equal(all, msg) {
			t.Fatalf("gave back %q, want %q", all, msg)
		}
		head := msg
		if bytes.HasPrefix(msg, []byte("\r\n")) {
			head = nil
		} else if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
			head = msg[:i]
		}
		if want := slices.ContainsFunc(head, func(c byte) bool { return c >= 0x80 }); got != want && len(msg) < maxHeaderScan {
			t.Fatalf("headerHas8Bit(%q) = %v, want %v", msg, got, want)
		}
	})
}
