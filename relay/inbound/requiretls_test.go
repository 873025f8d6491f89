package inbound

import (
	"strings"
	"testing"
)

// TestREQUIRETLS: the extension is offered only over TLS, the MAIL
// parameter is refused in the clear (RFC 8689 §4.1) and kept with the
// message over TLS; a transaction without it does not inherit it.
func TestREQUIRETLS(t *testing.T) {
	t.Parallel()
	cfg, pool := testTLS(t)
	addr, _, st := startServer(t, Options{TLSConfig: cfg})

	c := dial(t, addr)
	if ehlo := c.hello(); strings.Contains(ehlo, "REQUIRETLS") {
		t.Errorf("REQUIRETLS offered in the clear:\n%s", ehlo)
	}
	c.cmd("MAIL FROM:<a@example.test> REQUIRETLS", "530 5.7.10")
	if ehlo := c.startTLS(pool); !strings.Contains(ehlo, "250-REQUIRETLS\r\n") {
		t.Errorf("REQUIRETLS not offered over TLS:\n%s", ehlo)
	}
	c.cmd("MAIL FROM:<a@example.test> REQUIRETLS", "250")
	c.cmd("RCPT TO:<u@dest.test>", "250")
	c.cmd("DATA", "354")
	c.send(simpleMsg + ".\r\n")
	c.expect("250")
	if r := c.sendMessage("a@example.test", "v@dest.test", simpleMsg); !strings.HasPrefix(r, "250") {
		t.Fatalf("second message: %s", r)
	}
	msgs := st.all()
	if len(msgs) != 2 || !msgs[0].Message.RequireTLS || msgs[1].Message.RequireTLS {
		t.Fatalf("stored %d messages, RequireTLS %v", len(msgs), func() (v []bool) {
			for _, m := range msgs {
				v = append(v, m.Message.RequireTLS)
			}
			return
		}())
	}
}
