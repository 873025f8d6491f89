package selfsigned

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

func TestHandshakeVerifiesThroughPool(t *testing.T) {
	t.Parallel()
	c, err := New(time.Now(), "mx.test", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM); err != nil {
		t.Fatalf("PEM pair: %v", err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", c.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err == nil {
			conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", l.Addr().String(), &tls.Config{RootCAs: c.Pool, ServerName: "mx.test"})
	if err != nil {
		t.Fatalf("verified handshake: %v", err)
	}
	conn.Close()
	if _, err := New(time.Now()); err == nil {
		t.Error("no names accepted")
	}
}
