package fakemx

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"sluice/internal/fakeclock"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeClock is the shared test clock (internal/fakeclock).
type fakeClock = fakeclock.Clock

func newClock() *fakeClock { return fakeclock.New() }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start runs a server with the clock and a quiet logger and closes it at
// the end of the test.
func start(t *testing.T, o Options, clk *fakeClock) *Server {
	t.Helper()
	if clk != nil {
		o.Now = clk.Now
	}
	o.Logger = quietLogger()
	s, err := Start(o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// rawConn is a line-level SMTP client, so tests see the exact replies.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, s *Server) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { _ = c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

// read returns the code and the full text (lines joined by "\n") of one
// reply, or code 0 on EOF.
func (rc *rawConn) read() (int, string) {
	rc.t.Helper()
	var lines []string
	for {
		l, err := rc.r.ReadString('\n')
		if err != nil {
			return 0, strings.Join(lines, "\n")
		}
		l = strings.TrimRight(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			code, _ := strconv.Atoi(l[:min(3, len(l))])
			return code, strings.Join(lines, "\n")
		}
	}
}

// cmd sends a line and checks the reply code.
func (rc *rawConn) cmd(line string, want int) string {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, line+"\r\n"); err != nil {
		rc.t.Fatalf("write %q: %v", line, err)
	}
	code, text := rc.read()
	if code != want {
		rc.t.Fatalf("%q: got %d %q, want %d", line, code, text, want)
	}
	return text
}

func (rc *rawConn) expect(want int) string {
	rc.t.Helper()
	code, text := rc.read()
	if code != want {
		rc.t.Fatalf("got %d %q, want %d", code, text, want)
	}
	return text
}

// closed reports whether the server closed the connection.
func (rc *rawConn) closed() bool {
	_, err := rc.r.ReadByte()
	return err == io.EOF
}

// send runs a whole transaction and returns the end-of-DATA reply.
func (rc *rawConn) send(from, to, msgID string) (int, string) {
	rc.t.Helper()
	rc.cmd("MAIL FROM:<"+from+">", 250)
	rc.cmd("RCPT TO:<"+to+">", 250)
	rc.cmd("DATA", 354)
	body := "Message-ID: " + msgID + "\r\nSubject: t\r\n\r\nhello\r\n..dot\r\n.\r\n"
	if _, err := io.WriteString(rc.c, body); err != nil {
		rc.t.Fatalf("write body: %v", err)
	}
	return rc.read()
}
