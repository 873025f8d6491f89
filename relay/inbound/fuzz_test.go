package inbound

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzEnvelopeCommands fuzzes MAIL FROM and RCPT TO with their ESMTP
// parameters (SIZE=, BODY=, SMTPUTF8, RET=, NOTIFY=, ...) against a real
// inbound server: every reply is a well-formed code, the session always
// reaches QUIT or a fatal close, and nothing is ever stored without DATA.
func FuzzEnvelopeCommands(f *testing.F) {
	for _, s := range [][2]string{
		{"<a@src.test>", "<b@dest.test>"},
		{"<a@src.test> SIZE=1000 BODY=8BITMIME", "<b@dest.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@dest.test"},
		{"<> SMTPUTF8", "<ü@dest.test>"},
		{"<a@src.test> SIZE=99999999999999999999", "<\"x@y\"@dest.test>"},
		{"<a@src.test> RET=FULL ENVID=abc AUTH=<>", "<@r1,@r2:b@dest.test>"},
		{"a@src.test", "b@[192.0.2.1]"},
		{"<a@src.test> BODY=BINARYMIME", "<b%c@dest.test>"},
		{"<a@src.test> SIZE=", "<b@dest.test> X=Y=Z"},
	} {
		f.Add(s[0], s[1])
	}
	st := &fakeStore{}
	s, err := New(testOptions(Options{Store: st}))
	if err != nil {
		f.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go s.Serve(l)
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	oneLine := strings.NewReplacer("\r", " ", "\n", " ")
	f.Fuzz(func(t *testing.T, from, to string) {
		conn, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		go io.WriteString(conn, "EHLO fuzz.test\r\nMAIL FROM:"+oneLine.Replace(from)+"\r\nRCPT TO:"+oneLine.Replace(to)+"\r\nRSET\r\nQUIT\r\n")
		r := bufio.NewReader(conn)
		last := ""
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				break
			}
			if len(line) < 4 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' || line[2] < '0' || line[2] > '9' || (line[3] != ' ' && line[3] != '-') {
				t.Fatalf("malformed reply line %q", line)
			}
			last = line
		}
		if !strings.HasPrefix(last, "221") && !strings.HasPrefix(last, "421") && !strings.HasPrefix(last, "5") {
			t.Fatalf("session ended without QUIT reply or fatal close; last reply %q", last)
		}
		if n := len(st.all()); n != 0 {
			t.Fatalf("%d messages stored without DATA", n)
		}
	})
}
