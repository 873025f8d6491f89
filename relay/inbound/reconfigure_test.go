package inbound

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/selfsigned"
)

// TestReconfigureNewSessionsOnly: a reload applies to connections
// accepted after it; a session in flight finishes under the options it
// started with (issue 12 item 1: [access] and [limits] are reloadable).
func TestReconfigureNewSessionsOnly(t *testing.T) {
	t.Parallel()
	addr, s, st := startServer(t, Options{MaxMessageSize: 1000, MaxRecipients: 1})
	old := dial(t, addr)
	if ehlo := old.hello(); !strings.Contains(ehlo, "SIZE 1000") {
		t.Fatalf("EHLO before the reload: %q", ehlo)
	}
	old.cmd("MAIL FROM:<a@example.test>", "250")

	o := testOptions(Options{MaxMessageSize: 5000, MaxRecipients: 3, Store: st})
	o.Networks = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")} // loopback may no longer relay
	if err := s.Reconfigure(o); err != nil {
		t.Fatal(err)
	}

	// The old session: its transaction goes on with one recipient at most,
	// and it may still relay.
	old.cmd("RCPT TO:<r1@dest.test>", "250")
	old.cmd("RCPT TO:<r2@dest.test>", "452")
	old.cmd("DATA", "354")
	old.send(simpleMsg + ".\r\n")
	old.expect("250")
	if ehlo := old.cmd("EHLO client.test", "250 "); !strings.Contains(ehlo, "SIZE 1000") {
		t.Errorf("EHLO again on the old session: %q, want the old SIZE", ehlo)
	}

	// A new session: the new limits, and the new networks.
	c := dial(t, addr)
	if ehlo := c.hello(); !strings.Contains(ehlo, "SIZE 5000") {
		t.Errorf("EHLO after the reload: %q, want SIZE 5000", ehlo)
	}
	c.cmd("MAIL FROM:<a@example.test>", "530")
	if n := len(st.all()); n != 1 {
		t.Errorf("%d messages stored, want 1", n)
	}
}

// TestReconfigureRefusesAndChangesNothing: invalid options, or a change
// of the listener's kind, are refused and the server keeps its options.
func TestReconfigureRefusesBadOptions(t *testing.T) {
	t.Parallel()
	addr, s, st := startServer(t, Options{MaxMessageSize: 1000})
	bad := testOptions(Options{Store: st})
	bad.MaxRecipients = 0
	if err := s.Reconfigure(bad); err == nil {
		t.Error("MaxRecipients 0 accepted")
	}
	kind := testOptions(Options{Store: st, RequireAuth: true})
	if err := s.Reconfigure(kind); err == nil {
		t.Error("RequireAuth changed")
	}
	c := dial(t, addr)
	if ehlo := c.hello(); !strings.Contains(ehlo, "SIZE 1000") {
		t.Errorf("EHLO after refused reloads: %q", ehlo)
	}
}

// TestReconfigureRenewsCertificate: the certificate is re-read on reload:
// a client that connects after it sees the new certificate, and a TLS
// session opened before it goes on.
func TestReconfigureRenewsCertificate(t *testing.T) {
	t.Parallel()
	c1, err := selfsigned.New(time.Now(), testHost)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := selfsigned.New(time.Now(), testHost)
	if err != nil {
		t.Fatal(err)
	}
	addr, s, st := startServer(t, Options{TLSConfig: c1.Config})
	old := dial(t, addr)
	old.hello()
	if leaf := peerCert(t, old, c1.Pool); !bytes.Equal(leaf.Raw, c1.Config.Certificates[0].Certificate[0]) {
		t.Fatal("first certificate not served")
	}
	if err := s.Reconfigure(testOptions(Options{TLSConfig: c2.Config, Store: st})); err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr)
	c.hello()
	if leaf := peerCert(t, c, c2.Pool); !bytes.Equal(leaf.Raw, c2.Config.Certificates[0].Certificate[0]) {
		t.Error("a client after the reload does not see the renewed certificate")
	}
	if r := old.sendMessage("a@example.test", "r@dest.test", simpleMsg); !strings.HasPrefix(r, "250") {
		t.Errorf("the TLS session opened before the reload: %q", r)
	}
}

// peerCert runs STARTTLS and returns the server's certificate.
func peerCert(t *testing.T, c *client, pool *x509.CertPool) *x509.Certificate {
	t.Helper()
	c.startTLS(pool)
	return c.conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
}

// TestReconfigureSharesCaps: the connection caps count the sessions of
// every generation; a lowered max_connections refuses new connections
// while the old ones are open.
func TestReconfigureSharesCaps(t *testing.T) {
	t.Parallel()
	addr, s, st := startServer(t, Options{MaxConnections: 10})
	var open []*client
	for range 3 {
		c := dial(t, addr)
		c.hello()
		open = append(open, c)
	}
	if err := s.Reconfigure(testOptions(Options{MaxConnections: 3, Store: st})); err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr)
	c.expect("421 4.3.2")
	open[0].cmd("QUIT", "221")
	// Its slot comes back once the server saw the close.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dial(t, addr)
		if r := c.reply(); strings.HasPrefix(r, "220") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no slot after a QUIT: %q", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReconfigureInFlightBound: the in-flight budget is one across a
// reload (the daemon shares one InFlight), and SetMax changes its bound.
func TestReconfigureInFlightBound(t *testing.T) {
	t.Parallel()
	f := NewInFlight(0)
	addr, s, st := startServer(t, Options{InFlight: f, MaxMessageSize: 1000})
	a := dial(t, addr)
	a.hello()
	a.cmd("MAIL FROM:<a@example.test> SIZE=800", "250")
	f.SetMax(1000)
	if err := s.Reconfigure(testOptions(Options{InFlight: f, MaxMessageSize: 1000, Store: st})); err != nil {
		t.Fatal(err)
	}
	b := dial(t, addr)
	b.hello()
	b.cmd("MAIL FROM:<b@example.test> SIZE=800", "452 4.3.1")
	a.cmd("RSET", "250")
	b.cmd("MAIL FROM:<b@example.test> SIZE=800", "250")
	if got := f.Used(); got != 800 {
		t.Errorf("in flight %d, want 800", got)
	}
}

// TestReconfigureShutdownWaitsForEveryGeneration: Shutdown drains the
// sessions of earlier generations too, and Serve returns.
func TestReconfigureShutdownWaitsForEveryGeneration(t *testing.T) {
	t.Parallel()
	addr, s, st := startServer(t, Options{})
	old := dial(t, addr)
	old.hello()
	old.cmd("MAIL FROM:<a@example.test>", "250")
	old.cmd("RCPT TO:<r@dest.test>", "250")
	old.cmd("DATA", "354")
	old.send("Subject: x\r\n\r\n") // an upload in progress
	for range 3 {
		if err := s.Reconfigure(testOptions(Options{Store: st})); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { shutdown(t, s); close(done) }()
	old.send("body\r\n.\r\n")
	old.expect("250") // the upload in progress finishes
	old.expect("421 4.3.2")
	<-done
	if n := len(st.all()); n != 1 {
		t.Errorf("%d stored", n)
	}
}

// TestReconfigureUnderLoad reloads while clients come and go, for the
// race detector: every message is stored exactly once.
func TestReconfigureUnderLoad(t *testing.T) {
	t.Parallel()
	addr, s, st := startServer(t, Options{})
	const clients, each = 8, 10
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				c := dial(t, addr)
				c.hello()
				body := fmt.Sprintf("Message-ID: <%d.%d@t>\r\n\r\nx\r\n", i, j)
				if r := c.sendMessage("a@example.test", "r@dest.test", body); !strings.HasPrefix(r, "250") {
					t.Errorf("client %d message %d: %q", i, j, r)
				}
				c.cmd("QUIT", "221")
			}
		}()
	}
	stop := make(chan struct{})
	reloads := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				reloads <- n
				return
			default:
			}
			if err := s.Reconfigure(testOptions(Options{Store: st, MaxRecipients: 10 + n%5})); err != nil {
				t.Error(err)
			}
			n++
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	close(stop)
	n := <-reloads
	if got := len(st.all()); got != clients*each {
		t.Errorf("%d stored, want %d (after %d reloads)", got, clients*each, n)
	}
	// The server sees the last closes a moment after the clients' QUITs.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		retired := len(s.retired)
		s.mu.Unlock()
		if retired == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d retired generations kept after their sessions closed", retired)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
