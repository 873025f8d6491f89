package inbound

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"

	"sluice/queue"
)

func TestReadHeaderSplit(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("X-Pad: "+strings.Repeat("p", 90)+"\r\n", maxHeader/99+1)
	tests := []struct {
		name, msg  string
		hdr, rest  string
		ended      bool
		wantTooBig bool
	}{
		{"usual", "A: b\r\nC: d\r\n\r\nbody\r\n", "A: b\r\nC: d\r\n\r\n", "body\r\n", true, false},
		{"empty line first", "\r\nbody\r\n", "\r\n", "body\r\n", true, false},
		{"headers only", "A: b\r\nC: d\r\n", "A: b\r\nC: d\r\n", "", false, false},
		{"headers only, no final CRLF", "A: b", "A: b", "", false, false},
		{"empty", "", "", "", false, false},
		{"empty body", "A: b\r\n\r\n", "A: b\r\n\r\n", "", true, false},
		{"header section too large", big + "\r\nbody", "", "", false, true},
		{"headers only, too large", big, "", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// One byte per read: the empty line is found across reads.
			readers := map[string]io.Reader{"one read": strings.NewReader(tt.msg)}
			if len(tt.msg) < 1000 {
				readers["byte by byte"] = iotest.OneByteReader(strings.NewReader(tt.msg))
			}
			for rn, r := range readers {
				hdr, rest, ended, err := readHeader(r)
				if tt.wantTooBig {
					if !errors.Is(err, errHeaderSectionTooBig) {
						t.Errorf("%s: err = %v, want errInHeaderTooBig", rn, err)
					}
					continue
				}
				tail, _ := io.ReadAll(r)
				rest = append(rest, tail...)
				if err != nil || string(hdr) != tt.hdr || string(rest) != tt.rest || ended != tt.ended {
					t.Errorf("%s: hdr %q rest %q ended %v err %v", rn, hdr, rest, ended, err)
				}
			}
		})
	}
}

// TestInboundStreamsLargeMessage: a message of several MB reaches the
// store byte for byte (with our trace fields in its header section), in
// writes no larger than the copy buffer, never as one piece.
func TestInboundStreamsLargeMessage(t *testing.T) {
	t.Parallel()
	addr, _, st := startServer(t, Options{})
	c := dial(t, addr)
	c.hello()
	var body strings.Builder
	for i := 0; body.Len() < 3<<20; i++ {
		fmt.Fprintf(&body, "line %d of a large message with some text on it\r\n", i)
	}
	msg := "From: a@example.test\r\nSubject: big\r\n\r\n" + body.String()
	if r := c.sendMessage("a@example.test", "b@dest.test", msg); !strings.HasPrefix(r, "250") {
		t.Fatalf("DATA reply %q", r)
	}
	m := st.all()[0]
	got := string(m.Body)
	if !strings.HasPrefix(got, "Received: ") || !strings.HasSuffix(got, "\r\nSubject: big\r\n"+dateAndID(got)+"\r\n"+body.String()) {
		t.Errorf("stored message differs (%d bytes, want %d + header)", len(got), len(msg))
	}
	if !bytes.Equal(m.Header, []byte(got[:strings.Index(got, "\r\n\r\n")+4])) {
		t.Errorf("Header is not the stored header section: %q", m.Header)
	}
	if m.Size() != int64(len(got)) {
		t.Errorf("Size = %d, want %d", m.Size(), len(got))
	}
	st.mu.Lock()
	maxWrite := st.maxWrite
	st.mu.Unlock()
	if maxWrite > copyBuf+int(len(m.Header)) {
		t.Errorf("largest spool write %d bytes: the message was not streamed", maxWrite)
	}
	if !st.allDiscarded() {
		t.Error("spool not discarded after Enqueue")
	}
}

// dateAndID returns the Message-ID: and Date: lines prepareHeader added
// to the stored header section of msg.
func dateAndID(msg string) string {
	i := strings.Index(msg, "Message-ID: ")
	j := strings.Index(msg, "\r\n\r\n")
	if i < 0 || j < i {
		return "<missing>"
	}
	return msg[i : j+2]
}

func TestInboundHeaderTooLarge(t *testing.T) {
	t.Parallel()
	addr, _, st := startServer(t, Options{})
	c := dial(t, addr)
	c.hello()
	hdr := strings.Repeat("X-Pad: "+strings.Repeat("p", 90)+"\r\n", maxHeader/99+1)
	if r := c.sendMessage("a@example.test", "b@dest.test", hdr+"\r\nbody\r\n"); !strings.HasPrefix(r, "552 5.3.4") {
		t.Fatalf("DATA reply %q, want 552 5.3.4", r)
	}
	// The rest of DATA was read as data: the session goes on.
	c.cmd("NOOP", "250")
	if len(st.all()) != 0 {
		t.Error("message stored")
	}
}

// TestInboundSpoolFailure: a disk that fills up while the body is written
// gives a temporary 452 4.3.1 after the whole DATA, never a 5xx, and the
// partial spool is discarded.
func TestInboundSpoolFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("spool write: %w: %w", queue.ErrNoSpace, syscall.ENOSPC), "452 4.3.1"},
		{errors.New("EIO"), "451 4.3.0"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			st := &fakeStore{spoolErr: tt.err}
			addr, _, _ := startServer(t, Options{Store: st})
			c := dial(t, addr)
			c.hello()
			if r := c.sendMessage("a@example.test", "b@dest.test", simpleMsg); !strings.HasPrefix(r, tt.want) {
				t.Fatalf("DATA reply %q, want %s", r, tt.want)
			}
			c.cmd("NOOP", "250")
			if len(st.all()) != 0 || !st.allDiscarded() {
				t.Errorf("stored %d, discarded %v", len(st.all()), st.allDiscarded())
			}
		})
	}
}

// TestInboundRefusalDiscardsSpool: whatever refuses the message after the
// body was spooled, the spool is discarded.
func TestInboundRefusalDiscardsSpool(t *testing.T) {
	t.Parallel()
	st := &fakeStore{fail: errors.New("boom")}
	addr, _, _ := startServer(t, Options{Store: st})
	c := dial(t, addr)
	c.hello()
	if r := c.sendMessage("a@example.test", "b@dest.test", simpleMsg); !strings.HasPrefix(r, "451") {
		t.Fatalf("DATA reply %q", r)
	}
	if !st.allDiscarded() {
		t.Error("spool kept after a failed Enqueue")
	}
}
