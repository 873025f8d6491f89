package dsn

import (
	"bufio"
	"bytes"
	"testing"
	"time"
)

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// FuzzBuild checks that Build never panics and that its output is always
// SMTP-safe: CRLF only, no line over 998 octets, and a header section
// that nothing interpolated can extend.
func FuzzBuild(f *testing.F) {
	f.Add("app@example.com", "a@dest.test", "failed", "5.1.1", "mx.dest.test", "550 5.1.1 unknown", "relay", "Q1", []byte("Subject: x\r\n\r\nbody"))
	f.Add("x\r\ny", "b\n", "delayed", "", "", "421\r\n", "h\r", "", []byte("\n\r\n\r"))
	f.Add("ü@é", "ö@ä", "failed", "9.9.9", "é", "\xff\xfe", "", "\x00", []byte("A: \xff\r\rB\n\n"))
	f.Fuzz(func(t *testing.T, sender, addr, action, status, remote, diag, host, qid string, orig []byte) {
		r := Report{
			ReportingMTA: host, Sender: sender, QueueID: qid, Original: orig,
			Now: time.Unix(1700000000, 0).UTC(), MessageID: qid,
			Recipients: []Recipient{{Addr: addr, Action: action, Status: status, RemoteMTA: remote, Diagnostic: diag}},
		}
		out, err := Build(r)
		if err != nil {
			return
		}
		for i, c := range out {
			if c == '\n' && (i == 0 || out[i-1] != '\r') {
				t.Fatalf("bare LF at %d", i)
			}
			if c == '\r' && (i+1 >= len(out) || out[i+1] != '\n') {
				t.Fatalf("lone CR at %d", i)
			}
		}
		for _, l := range bytes.Split(out, []byte("\r\n")) {
			if len(l) > 998 {
				t.Fatalf("line of %d octets", len(l))
			}
		}
		// The top-level header section is exactly the eight fields Build
		// writes, whatever the input.
		hdr, _, _ := bytes.Cut(out, []byte("\r\n\r\n"))
		n := 0
		for _, l := range bytes.Split(hdr, []byte("\r\n")) {
			if len(l) > 0 && l[0] != ' ' && l[0] != '\t' {
				n++
			}
		}
		if n != 8 {
			t.Fatalf("%d header fields:\n%s", n, hdr)
		}
	})
}
