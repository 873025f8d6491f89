package fakemx

import (
	"crypto/tls"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func TestSessionCap(t *testing.T) {
	t.Parallel()
	s := start(t, Options{MaxSessions: 2}, newClock())
	a, b := dial(t, s), dial(t, s)
	a.expect(220)
	b.expect(220)
	c := dial(t, s)
	if txt := c.expect(421); txt != DefaultSessionsText {
		t.Errorf("refusal %q, want %q", txt, DefaultSessionsText)
	}
	if !c.closed() {
		t.Error("refused connection left open")
	}
	a.cmd("QUIT", 221)
	if !a.closed() {
		t.Fatal("QUIT did not close")
	}
	// The slot is free again once the server has seen the QUIT; the
	// release happens before the close that a.closed() observed.
	d := dial(t, s)
	d.expect(220)
	st := s.Stats()
	if st.SessionRefusals != 1 || st.Refused421 != 1 || st.Sessions != 3 || st.MaxConcurrent != 2 || st.Connections != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestRateWindow(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := start(t, Options{RatePerWindow: 2, Window: 10 * time.Second, RateText: "421 4.7.0 slow down"}, clk)
	c := dial(t, s)
	c.expect(220)
	c.cmd("EHLO client.test", 250)
	for i := range 2 {
		if code, txt := c.send("a@src.test", "b@dest.test", fmt.Sprintf("<%d@x>", i)); code != 250 {
			t.Fatalf("message %d: %d %s", i, code, txt)
		}
	}
	if txt := c.cmd("MAIL FROM:<a@src.test>", 421); txt != "421 4.7.0 slow down" {
		t.Errorf("got %q", txt)
	}
	if !c.closed() {
		t.Error("session not closed after rate 421")
	}
	// Still the same window: a new session is refused at MAIL again.
	clk.Advance(9 * time.Second)
	c = dial(t, s)
	c.expect(220)
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<a@src.test>", 421)
	// Next window: room again.
	clk.Advance(time.Second)
	c = dial(t, s)
	c.expect(220)
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<a@src.test>", 250)
	st := s.Stats()
	if st.RateRefusals != 2 || st.Refused421 != 2 || st.Delivered != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestGreylist(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text, want string
	}{
		{"default text", "", DefaultGreylistText},
		{"delay text", "451 4.7.1 Greylisted, try again in %d seconds", "451 4.7.1 Greylisted, try again in 300 seconds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			s := start(t, Options{Greylist: 5 * time.Minute, GreylistText: tc.text}, clk)
			c := dial(t, s)
			c.expect(220)
			c.cmd("EHLO client.test", 250)
			c.cmd("MAIL FROM:<a@src.test>", 250)
			code := 450
			if tc.text != "" {
				code = 451
			}
			if got := c.cmd("RCPT TO:<u1@dest.test>", code); got != tc.want {
				t.Errorf("first reply %q, want %q", got, tc.want)
			}
			clk.Advance(4*time.Minute + 30*time.Second)
			got := c.cmd("RCPT TO:<u1@dest.test>", code)
			if tc.text != "" && got != "451 4.7.1 Greylisted, try again in 30 seconds" {
				t.Errorf("second reply %q", got)
			}
			// Another triplet (other sender) starts its own window.
			c.cmd("RSET", 250)
			c.cmd("MAIL FROM:<other@src.test>", 250)
			c.cmd("RCPT TO:<u1@dest.test>", code)
			c.cmd("RSET", 250)
			clk.Advance(30 * time.Second)
			c.cmd("MAIL FROM:<a@src.test>", 250)
			c.cmd("RCPT TO:<u1@dest.test>", 250)
			c.cmd("DATA", 354)
			_, _ = io.WriteString(c.c, "Message-ID: <g@x>\r\n\r\nhi\r\n.\r\n")
			c.expect(250)

			first, delivered, replies, ok := s.Recipient("U1@dest.test")
			if !ok || replies != 3 || delivered.Sub(first) != 5*time.Minute {
				t.Errorf("Recipient = %v %v %d %v", first, delivered, replies, ok)
			}
			lag := s.Stats().GreylistLag(5 * time.Minute)
			if lag.Recipients != 1 || lag.Max != 0 || lag.RepliesPerRcpt != 3 {
				t.Errorf("lag %+v", lag)
			}
		})
	}
}

func TestOutageAndSchedule(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := start(t, Options{
		MaxSessions: 1,
		Outages:     []Window{{Start: 10 * time.Second, End: 20 * time.Second}},
		Schedule:    []Limits{{At: 30 * time.Second, MaxSessions: 2}},
	}, clk)
	a := dial(t, s)
	a.expect(220)
	dial(t, s).expect(421) // K=1
	clk.Advance(10 * time.Second)
	if txt := dial(t, s).expect(421); txt != DefaultOutageText {
		t.Errorf("outage reply %q", txt)
	}
	clk.Advance(10 * time.Second) // End is exclusive
	dial(t, s).expect(421)        // K=1 again
	clk.Advance(10 * time.Second) // schedule: K=2
	b := dial(t, s)
	b.expect(220)
	dial(t, s).expect(421)
	st := s.Stats()
	if st.OutageRefusals != 1 || st.SessionRefusals != 3 || st.Refused421 != 4 || st.MaxConcurrent != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestScript(t *testing.T) {
	t.Parallel()
	s := start(t, Options{Script: []Rule{
		{Stage: StageRcpt, Match: "nobody", Reply: "550 5.1.1 no such user"},
		{Stage: StageDataEnd, Match: "", Reply: "451 4.3.0 try again", Times: 1},
		{Stage: StageMail, Match: "blocked", Reply: "421 4.7.28 Gmail has detected an unusual rate\n421 4.7.28 of unsolicited mail"},
	}}, nil)
	c := dial(t, s)
	c.expect(220)
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<a@src.test>", 250)
	c.cmd("RCPT TO:<nobody@dest.test>", 550)
	c.cmd("RCPT TO:<nobody@dest.test>", 550)
	c.cmd("RCPT TO:<u@dest.test>", 250)
	c.cmd("DATA", 354)
	_, _ = io.WriteString(c.c, "Message-ID: <s@x>\r\n\r\nhi\r\n.\r\n")
	c.expect(451)
	if code, txt := c.send("a@src.test", "u@dest.test", "<s@x>"); code != 250 {
		t.Fatalf("second DATA: %d %s", code, txt)
	}
	got := c.cmd("MAIL FROM:<blocked@src.test>", 421)
	if want := "421-4.7.28 Gmail has detected an unusual rate\n421 4.7.28 of unsolicited mail"; got != want {
		t.Errorf("multi-line reply %q", got)
	}
	if !c.closed() {
		t.Error("scripted 421 did not close")
	}
	st := s.Stats()
	if st.ScriptedReplies != 4 || st.Delivered != 1 || st.Refused421 != 1 || st.Duplicates != 0 {
		t.Errorf("stats %+v", st)
	}
}

// The hostile-receiver rules: a non-354 reply to DATA, and an extra
// unrequested reply after a scripted one, in the same write or a later one.
func TestScriptDataStageAndExtra(t *testing.T) {
	t.Parallel()
	s := start(t, Options{Script: []Rule{
		{Stage: StageData, Match: "nodata", Reply: "250 2.0.0 Ok"},
		{Stage: StageDataEnd, Match: "same", Reply: "554 5.7.1 rejected", Extra: "250 2.0.0 extra"},
		{Stage: StageDataEnd, Match: "later", Reply: "250 2.0.0 queued", Extra: "250 2.0.0 extra", Later: true},
	}}, nil)
	c := dial(t, s)
	c.expect(220)
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<a@src.test>", 250)
	c.cmd("RCPT TO:<nodata@dest.test>", 250)
	c.cmd("DATA", 250)
	c.cmd("RSET", 250)
	for _, to := range []string{"same@dest.test", "later@dest.test"} {
		code, _ := c.send("a@src.test", to, "<"+to+">")
		if want := map[string]int{"same@dest.test": 554, "later@dest.test": 250}[to]; code != want {
			t.Fatalf("%s: final reply %d, want %d", to, code, want)
		}
		if got := c.expect(250); got != "250 2.0.0 extra" {
			t.Errorf("%s: extra reply %q", to, got)
		}
	}
	if st := s.Stats(); st.ExtraReplies != 2 || st.Delivered != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestScriptGreetingAndEHLO(t *testing.T) {
	t.Parallel()
	s := start(t, Options{Script: []Rule{
		{Stage: StageGreeting, Reply: "554 5.7.1 go away", Times: 1},
		{Stage: StageEHLO, Match: "localhost", Reply: "550 5.7.1 bad HELO"},
	}}, nil)
	c := dial(t, s)
	c.expect(554)
	if !c.closed() {
		t.Error("554 greeting left open")
	}
	c = dial(t, s)
	c.expect(220)
	c.cmd("EHLO localhost", 550)
	c.cmd("MAIL FROM:<a@b>", 503)
	c.cmd("EHLO relay.test", 250)
	c.cmd("MAIL FROM:<a@b>", 250)
	if n := s.Stats().EHLONames; n["localhost"] != 1 || n["relay.test"] != 1 {
		t.Errorf("EHLO names %v", n)
	}
}

func TestDuplicatesAndBodies(t *testing.T) {
	t.Parallel()
	s := start(t, Options{KeepBodies: true}, nil)
	c := dial(t, s)
	c.expect(220)
	c.cmd("EHLO client.test", 250)
	for _, id := range []string{"<1@x>", "<2@x>", "<1@x>", "<1@x>"} {
		if code, _ := c.send("a@src.test", "b@dest.test", id); code != 250 {
			t.Fatalf("send %s: %d", id, code)
		}
	}
	// A bare LF before the real end: "\n.\n" is content, not the end.
	c.cmd("MAIL FROM:<a@src.test>", 250)
	c.cmd("RCPT TO:<b@dest.test>", 250)
	c.cmd("DATA", 354)
	_, _ = io.WriteString(c.c, "Message-ID:\r\n <3@x>\r\n\r\nhi\n.\nMAIL FROM:<evil>\r\n.\r\n")
	c.expect(250)
	ids := s.MessageIDs()
	if ids["<1@x>"] != 3 || ids["<2@x>"] != 1 || ids["<3@x>"] != 1 {
		t.Errorf("MessageIDs %v", ids)
	}
	st := s.Stats()
	if st.Duplicates != 2 || st.Delivered != 5 || st.DeliveredRcpts != 5 || st.BareLineEndings != 1 {
		t.Errorf("stats %+v", st)
	}
	bodies := s.Received()
	if len(bodies) != 5 || !strings.HasSuffix(string(bodies[0]), "hello\r\n.dot\r\n") {
		t.Fatalf("bodies %q", bodies)
	}
	if !strings.Contains(string(bodies[4]), "hi\n.\nMAIL FROM:<evil>\r\n") {
		t.Errorf("smuggling body %q", bodies[4])
	}
}

// TestGoSMTPClient checks the server against a real client, with
// STARTTLS, and that the EHLO after TLS is counted.
func TestGoSMTPClient(t *testing.T) {
	t.Parallel()
	s := start(t, Options{STARTTLS: true, Hostname: "mx.dest.test"}, nil)
	c, err := smtp.DialStartTLS(s.Addr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("DialStartTLS: %v", err)
	}
	defer c.Close()
	if err := c.Hello("relay.src.test"); err != nil {
		t.Fatalf("Hello: %v", err)
	}
	msg := "Message-ID: <tls@x>\r\n\r\nbody\r\n.leading dot\r\n"
	if err := c.SendMail("a@src.test", []string{"b@dest.test", "c@dest.test"}, strings.NewReader(msg)); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	st := s.Stats()
	if st.TLSSessions != 1 || st.Delivered != 1 || st.DeliveredRcpts != 2 || s.MessageIDs()["<tls@x>"] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	t.Parallel()
	tests := []Options{
		{Script: []Rule{{Stage: "helo", Reply: "250 ok"}}},
		{Script: []Rule{{Stage: "rcpt", Reply: "ok"}}},
		{GreylistText: "45 bad"},
		{Script: []Rule{{Stage: "rcpt", Reply: "550 x", Times: -1}}},
	}
	for i, o := range tests {
		o.Logger = quietLogger()
		if s, err := Start(o); err == nil {
			_ = s.Close()
			t.Errorf("case %d: Start accepted %+v", i, o)
		}
	}
}

// TestPipelining sends a whole transaction in one write (RFC 2920) and
// expects every reply in order.
func TestPipelining(t *testing.T) {
	t.Parallel()
	s := start(t, Options{}, nil)
	c := dial(t, s)
	c.expect(220)
	c.cmd("EHLO client.test", 250)
	_, _ = io.WriteString(c.c, "MAIL FROM:<a@b>\r\nRCPT TO:<x@d>\r\nRCPT TO:<y@d>\r\nDATA\r\n")
	for _, want := range []int{250, 250, 250, 354} {
		c.expect(want)
	}
	_, _ = io.WriteString(c.c, "Message-ID: <p@x>\r\n\r\n.\r\nQUIT\r\n")
	c.expect(250)
	c.expect(221)
	if st := s.Stats(); st.DeliveredRcpts != 2 {
		t.Errorf("stats %+v", st)
	}
}
