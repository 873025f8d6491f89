package inbound

import (
	"strings"
	"testing"

	"sluice/mailbox"
	"sluice/mailbox/mailboxtest"
)

// TestInboundAddressSuite runs the isemail suite through a real session,
// so that it covers what the server accepts, not just the parser: every
// address RFC 5321 §4.1.2 allows is accepted at MAIL and at RCPT whatever
// go-smtp's parser would have made of it, every other one is refused, and
// the envelope stores the canonical form.
func TestInboundAddressSuite(t *testing.T) {
	t.Parallel()
	addr, _, st := startServer(t, Options{AllowAddressLiterals: true})
	c := dial(t, addr)
	c.hello()
	var want []string
	c.cmd("MAIL FROM:<a@example.test> SMTPUTF8", "250")
	cases := mailboxtest.IsEmailSuite(t)
	for _, tc := range cases {
		if strings.ContainsAny(tc.Addr, "\r\n") {
			continue // cannot travel in a command line; the parser test has them
		}
		c.send("RCPT TO:<" + tc.Addr + ">\r\n")
		r := c.reply()
		if strings.HasPrefix(r, "250 ") != tc.Valid || !tc.Valid && !strings.HasPrefix(r, "5") {
			t.Errorf("#%s RCPT TO:<%s> (%s): %q", tc.ID, tc.Addr, tc.Why, r)
			continue
		}
		if tc.Valid {
			canon, err := mailbox.Canonical(tc.Addr)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, canon)
		}
	}
	c.cmd("DATA", "354")
	c.send(simpleMsg + ".\r\n")
	c.expect("250")
	got := st.all()[0].Rcpts
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stored recipients:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The same addresses as senders ("<>" is the null sender there).
	for _, tc := range cases {
		if strings.ContainsAny(tc.Addr, "\r\n") || tc.Addr == "" {
			continue
		}
		c.send("MAIL FROM:<" + tc.Addr + "> SMTPUTF8\r\nRSET\r\n")
		r := c.reply()
		c.expect("250")
		if strings.HasPrefix(r, "250 ") != tc.Valid {
			t.Errorf("#%s MAIL FROM:<%s> (%s): %q", tc.ID, tc.Addr, tc.Why, r)
		}
	}
}
