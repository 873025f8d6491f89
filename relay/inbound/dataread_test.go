package inbound

import (
	"fmt"
	"strings"
	"testing"
)

// smuggleSequences are the fake end-of-data markers of SMTP smuggling
// (CVE-2023-51764/51765/51766) plus the one go-smtp's dot reader hides.
var smuggleSequences = []string{
	"\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r\n", "\r.\r", "\r.\n", "\n.\r", "\r\n.\r", "\r\n.\r\r\n",
}

func TestInboundSmuggling(t *testing.T) {
	t.Parallel()
	for _, seq := range smuggleSequences {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%q/bdat=%v", seq, chunked), func(t *testing.T) {
				t.Parallel()
				addr, _, st := startServer(t, Options{})
				c := dial(t, addr)
				c.hello()
				c.cmd("MAIL FROM:<a@example.test>", "250")
				c.cmd("RCPT TO:<b@dest.test>", "250")
				smuggled := "MAIL FROM:<evil@example.test>\r\nRCPT TO:<victim@dest.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n"
				content := "Subject: real\r\n\r\nbody" + seq + smuggled
				if chunked {
					c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(content), content))
				} else {
					c.cmd("DATA", "354")
					c.send(content + "tail\r\n.\r\n")
				}
				c.expect("521 5.5.2")
				c.expectClosed()
				if n := len(st.all()); n != 0 {
					t.Fatalf("stored %d messages", n)
				}
			})
		}
	}
}

func TestInboundBDAT(t *testing.T) {
	t.Parallel()
	addr, _, st := startServer(t, Options{})
	c := dial(t, addr)
	c.hello()
	c.cmd("MAIL FROM:<a@example.test>", "250")
	c.cmd("RCPT TO:<b@dest.test>", "250")
	// A chunk that looks like commands must stay data.
	part1 := "Subject: x\r\n\r\nDATA\r\nSTARTTLS\r\n"
	part2 := ".\r\nend\r\n"
	c.send(fmt.Sprintf("BDAT %d\r\n%s", len(part1), part1))
	c.expect("250")
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(part2), part2))
	c.expect("250")
	c.cmd("NOOP", "250")
	msgs := st.all()
	if len(msgs) != 1 || !strings.HasSuffix(string(msgs[0].Body), "\r\n\r\nDATA\r\nSTARTTLS\r\n.\r\nend\r\n") {
		t.Fatalf("stored %d messages: %+v", len(msgs), msgs)
	}
}

func TestWireFeed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		in       string
		events   []lineEvent
		wantBare bool
		wantMode wireMode
	}{
		{"commands", "EHLO x\r\nMAIL FROM:<a@b>\r\nrcpt to:<c@d>\r\nMAIL\r\nRCPTX\r\n", []lineEvent{evEhlo, evMail, evRcpt}, false, modeCommand},
		{"data line", "DATA\r\n", []lineEvent{evData}, false, modeCommand},
		{"starttls prefix", "starttls\r\n", []lineEvent{evStartTLS}, false, modeCommand},
		{"http first", "GET / HTTP/1.1\r\n", []lineEvent{evHTTP}, false, modeCommand},
		{"http later is a command", "NOOP\r\nGET / HTTP/1.1\r\n", nil, false, modeCommand},
		{"bdat skips chunk", "BDAT 6\r\nDATA\r\n", nil, false, modeCommand},
		{"bdat bad arg is a command", "BDAT x\r\nDATA\r\n", []lineEvent{evData}, false, modeCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var w wire
			var got []lineEvent
			p := []byte(tt.in)
			for len(p) > 0 {
				n, ev, _ := w.feed(p)
				p = p[n:]
				if ev != evNone {
					got = append(got, ev)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.events) || w.bare != tt.wantBare || w.mode != tt.wantMode {
				t.Errorf("events %v bare %v mode %v", got, w.bare, w.mode)
			}
		})
	}
}

func TestWireData(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		data     string
		wantBare bool
		wantEnd  bool
	}{
		{"clean", "a\r\nb\r\n.\r\n", false, true},
		{"immediate end", ".\r\n", false, true},
		{"dot stuffed", "..x\r\n.\r\n", false, true},
		{"hidden lone CR", "a\r\n.\r\r\nb\r\n.\r\n", true, true},
		{"lone CR after dot", "a\r\n.\rb\r\n.\r\n", true, true},
		{"not yet ended", "a\r\n.\n", true, false},
		{"CR CR LF dot is not an end", "a\r\r\n.\r\n", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var w wire
			w.startData()
			n, _, _ := w.feed([]byte(tt.data))
			if n != len(tt.data) || w.bare != tt.wantBare || (w.mode == modeCommand) != tt.wantEnd {
				t.Errorf("n %d bare %v mode %v", n, w.bare, w.mode)
			}
		})
	}
}

func TestBareScan(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{"": false, "a\r\nb\r\n": false, "a\nb": true, "a\rb": true, "a\r": true, "\r\n\r\n": false, "\n": true,
		"\r\r\n": true, "ab\r\n\n": true, "x\r\n\r": true, "\r\nx": false}
	for in, want := range tests {
		// Whatever the split into writes, the verdict is the same: the
		// body streams through in chunks.
		for cut := 0; cut <= len(in); cut++ {
			var s bareScan
			s.Write([]byte(in[:cut]))
			s.Write([]byte(in[cut:]))
			if got := s.found(); got != want {
				t.Errorf("bareScan(%q | %q) = %v", in[:cut], in[cut:], got)
			}
		}
	}
}

// FuzzWire checks that the wire view does not depend on how the stream is
// split into reads: one read and reads of 1 to 16 bytes must agree on
// where DATA ends and whether a lone CR/LF was seen (steps of 1 byte included).
func FuzzWire(f *testing.F) {
	for _, s := range smuggleSequences {
		f.Add([]byte("DATA\r\nx"+s+"MAIL FROM:<a@b>\r\n.\r\nQUIT\r\n"), uint8(3))
	}
	f.Add([]byte("BDAT 3 LAST\r\nabcEHLO x\r\n"), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		run := func(step int) (wire, []lineEvent) {
			var w wire
			var evs []lineEvent
			for p := data; len(p) > 0; {
				k := min(step, len(p))
				n, ev, _ := w.feed(p[:k])
				p = p[n:]
				if ev != evNone {
					evs = append(evs, ev)
					if ev == evData {
						w.startData()
					}
				}
			}
			return w, evs
		}
		a, ea := run(len(data) + 1)
		b, eb := run(int(split%16) + 1)
		if a.mode != b.mode || a.bare != b.bare || a.dstate != b.dstate || fmt.Sprint(ea) != fmt.Sprint(eb) {
			t.Fatalf("split-dependent: %+v %v vs %+v %v", a, ea, b, eb)
		}
	})
}

// The wire view sits above TLS: smuggling after STARTTLS is caught too.
func TestInboundSmugglingOverTLS(t *testing.T) {
	t.Parallel()
	cfg, pool := testTLS(t)
	for _, seq := range smuggleSequences {
		t.Run(fmt.Sprintf("%q", seq), func(t *testing.T) {
			t.Parallel()
			addr, _, st := startServer(t, Options{TLSConfig: cfg})
			c := dial(t, addr)
			c.hello()
			c.startTLS(pool)
			c.cmd("MAIL FROM:<a@example.test>", "250")
			c.cmd("RCPT TO:<b@dest.test>", "250")
			c.cmd("DATA", "354")
			c.send("Subject: real\r\n\r\nbody" + seq + "MAIL FROM:<evil@example.test>\r\nRCPT TO:<v@dest.test>\r\nDATA\r\nx\r\n.\r\n")
			c.expect("521 5.5.2")
			c.expectClosed()
			if n := len(st.all()); n != 0 {
				t.Fatalf("stored %d messages", n)
			}
		})
	}
}
