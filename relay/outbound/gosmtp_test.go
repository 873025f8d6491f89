package outbound

import (
	"context"
	"io"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

// goSMTPSession records one go-smtp server session.
type goSMTPSession struct {
	rec  *goSMTPRecord
	conn *smtp.Conn
}

type goSMTPRecord struct {
	mu     sync.Mutex
	names  []string // EHLO name in force at each MAIL
	tls    []bool
	rcpts  []string
	bodies []string
}

func (s *goSMTPSession) Reset()        {}
func (s *goSMTPSession) Logout() error { return nil }
func (s *goSMTPSession) Mail(string, *smtp.MailOptions) error {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	_, isTLS := s.conn.TLSConnectionState()
	s.rec.names = append(s.rec.names, s.conn.Hostname())
	s.rec.tls = append(s.rec.tls, isTLS)
	return nil
}

func (s *goSMTPSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if to == "nobody@dest.test" {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.rec.mu.Lock()
	s.rec.rcpts = append(s.rec.rcpts, to)
	s.rec.mu.Unlock()
	return nil
}

func (s *goSMTPSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.rec.mu.Lock()
	s.rec.bodies = append(s.rec.bodies, string(b))
	s.rec.mu.Unlock()
	return nil
}

// Interoperability with a real SMTP server implementation: STARTTLS,
// EHLO name on both sides of it, dot transparency, partial RCPT failure,
// connection reuse.
func TestOutboundAgainstGoSMTPServer(t *testing.T) {
	t.Parallel()
	srvCfg, _ := testCert(t)
	rec := &goSMTPRecord{}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &goSMTPSession{rec: rec, conn: c}, nil
	}))
	srv.Domain = "mx.test"
	srv.TLSConfig = srvCfg
	srv.EnableSMTPUTF8 = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })

	ob, _ := testClient(t, nil, "", func(o *Options) {
		o.Routes = map[string]Route{"dest.test": {Host: ln.Addr().String(), TLS: TLSOpportunistic}}
	})
	s := testDial(t, ob)
	body := "Subject: dots\r\n\r\n.leading dot\r\n.\r\nend\r\n"
	for i := range 2 {
		got := s.Send(context.Background(), withBody(&Delivery{ID: "M", From: "app@src.test",
			Rcpts: []string{"a@dest.test", "nobody@dest.test"}, SMTPUTF8: true}, body))
		if got[0].Code != 250 || got[1].Code != 550 || got[1].Enhanced != "5.1.1" {
			t.Fatalf("send %d: %v", i, got)
		}
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !slices.Equal(rec.names, []string{testHostname, testHostname}) || !slices.Equal(rec.tls, []bool{true, true}) {
		t.Errorf("EHLO names %q, TLS %v", rec.names, rec.tls)
	}
	if len(rec.bodies) != 2 || rec.bodies[0] != body || rec.bodies[1] != body {
		t.Errorf("bodies = %q", rec.bodies)
	}
}
