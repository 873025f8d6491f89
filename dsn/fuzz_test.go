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

// FuzzBuildDSNParams (issue 13 item 5): ENVID, ORCPT and the actions
// never add a field to the delivery-status part, whatever a client gave
// (they are interpolated there), and the output stays SMTP-safe.
func FuzzBuildDSNParams(f *testing.F) {
	f.Add("env-1", "rfc822;orig@dest.test", uint8(0), false)
	f.Add("x\r\nAction: delivered", "rfc822;a\r\nFinal-Recipient: rfc822; evil@x", uint8(1), true)
	f.Add("\xff\x00+=", "utf-8;jörg\\x{0A}@ex", uint8(2), false)
	f.Add("", ";", uint8(3), true)
	known := map[string]bool{"Reporting-MTA": true, "Original-Envelope-Id": true, "X-Queue-ID": true, "X-Original-Sender": true,
		"Arrival-Date": true, "Original-Recipient": true, "Final-Recipient": true, "Action": true, "Status": true,
		"Remote-MTA": true, "Diagnostic-Code": true, "Last-Attempt-Date": true}
	f.Fuzz(func(t *testing.T, envid, orcpt string, action uint8, hdrs bool) {
		r := Report{ReportingMTA: "relay.test", Sender: "app@src.test", QueueID: "Q1", EnvID: envid,
			Original: []byte("Subject: x\r\n\r\nbody\r\n"), Now: time.Unix(1700000000, 0).UTC(), MessageID: "<m@relay.test>",
			Recipients: []Recipient{{Addr: "a@dest.test", ORcpt: orcpt, Action: []string{"failed", "delayed", "delivered", "relayed"}[action%4]}}}
		if hdrs {
			r.Ret = RetHdrs
		}
		out, err := Build(r)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range out {
			if c == '\n' && (i == 0 || out[i-1] != '\r') || c == '\r' && (i+1 >= len(out) || out[i+1] != '\n') {
				t.Fatalf("bare CR or LF at %d", i)
			}
		}
		_, rest, _ := bytes.Cut(out, []byte("Content-Type: message/delivery-status\r\n\r\n"))
		status, _, _ := bytes.Cut(rest, []byte("\r\n--"))
		seen := map[string]int{}
		for _, l := range bytes.Split(status, []byte("\r\n")) {
			if len(l) > 998 {
				t.Fatalf("line of %d octets", len(l))
			}
			if len(l) == 0 || l[0] == ' ' || l[0] == '\t' {
				continue
			}
			name, _, ok := bytes.Cut(l, []byte(":"))
			if !ok || !known[string(name)] {
				t.Fatalf("unexpected line %q in the delivery status", l)
			}
			seen[string(name)]++
		}
		for name, n := range seen {
			if n > 1 {
				t.Fatalf("%s appears %d times:\n%s", name, n, status)
			}
		}
	})
}
