package inbound

import (
	"reflect"
	"strings"
	"testing"

	"sluice/dsn"
)

// TestDSNParameters (issue 13 item 5): EHLO offers DSN (RFC 3461 §4);
// RET and ENVID at MAIL and NOTIFY and ORCPT at each RCPT reach the
// store with the message, a recipient without parameters getting none;
// a bad NOTIFY set is refused.
func TestDSNParameters(t *testing.T) {
	addr, _, st := startServer(t, Options{})
	c := dial(t, addr)
	if ehlo := c.hello(); !strings.Contains(ehlo, "DSN") {
		t.Fatalf("EHLO does not offer DSN:\n%s", ehlo)
	}
	c.cmd("MAIL FROM:<a@src.test> RET=HDRS ENVID=env+2B42", "250")
	c.cmd("RCPT TO:<plain@dest.test>", "250")
	c.cmd("RCPT TO:<b@dest.test> NOTIFY=success,delay ORCPT=rfc822;orig+2Bb@dest.test", "250")
	c.cmd("RCPT TO:<n@dest.test> NOTIFY=NEVER", "250")
	c.cmd("RCPT TO:<x@dest.test> NOTIFY=NEVER,SUCCESS", "501")
	c.cmd("DATA", "354")
	c.cmd("Subject: x\r\n\r\nhi\r\n.", "250")
	msgs := st.all()
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored", len(msgs))
	}
	m := msgs[0].Message
	if m.DSN != (dsn.Envelope{Ret: dsn.RetHdrs, EnvID: "env+42"}) {
		t.Errorf("envelope DSN %+v", m.DSN)
	}
	want := []dsn.Rcpt{{}, {Notify: dsn.NotifySuccess | dsn.NotifyDelay, ORcpt: "rfc822;orig+b@dest.test"}, {Notify: dsn.NotifyNever}}
	if !reflect.DeepEqual(m.RcptDSN, want) || len(m.Rcpts) != 3 {
		t.Errorf("recipients %q DSN %+v, want %+v", m.Rcpts, m.RcptDSN, want)
	}
	// The next transaction starts clean.
	c.cmd("MAIL FROM:<a@src.test>", "250")
	c.cmd("RCPT TO:<plain@dest.test>", "250")
	c.cmd("DATA", "354")
	c.cmd("Subject: y\r\n\r\nhi\r\n.", "250")
	if m := st.all()[1].Message; m.DSN != (dsn.Envelope{}) || m.RcptDSN != nil {
		t.Errorf("second message inherited DSN parameters: %+v %+v", m.DSN, m.RcptDSN)
	}
}
