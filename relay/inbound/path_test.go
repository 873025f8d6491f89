package inbound

import (
	"strings"
	"testing"

	"sluice/mailbox"
)

// TestInboundPathPipelined: quoted local parts survive pipelining (the
// conn rewrites each line of a burst) and reach the store canonical.
func TestInboundPathPipelined(t *testing.T) {
	t.Parallel()
	addr, _, st := startServer(t, Options{})
	c := dial(t, addr)
	c.hello()
	c.send(`MAIL FROM:<"s@x"@src.test> BODY=8BITMIME` + "\r\n" + `RCPT TO:<"john@doe"@example.org>` + "\r\n" +
		`rcpt to:<""@example.org>` + "\r\n" + `RCPT TO:<"a\"b"@example.org>` + "\r\nDATA\r\n")
	for _, want := range []string{"250 2.1.0", "250 2.1.5", "250 2.1.5", "250 2.1.5", "354"} {
		c.expect(want)
	}
	c.send(simpleMsg + ".\r\n")
	c.expect("250")
	m := st.all()[0]
	if m.From != `"s@x"@src.test` || strings.Join(m.Rcpts, " ") != `"john@doe"@example.org ""@example.org "a\"b"@example.org` {
		t.Errorf("stored %q %q", m.From, m.Rcpts)
	}
}

// TestInboundPathCannotBeForged: a client that sends what looks like a
// stand-in path gets exactly that address, taken literally.
func TestInboundPathCannotBeForged(t *testing.T) {
	t.Parallel()
	addr, s, st := startServer(t, Options{})
	c := dial(t, addr)
	c.hello()
	forged := s.pathKey + "am9obkBkb2U@dest.test" // base64url of john@doe
	if r := c.sendMessage("a@example.test", forged, simpleMsg); !strings.HasPrefix(r, "250") {
		t.Fatal(r)
	}
	c.cmd("MAIL FROM:<a@example.test>", "250")
	c.cmd("RCPT TO:<"+s.pathKey+"!a@invalid>", "250") // a valid address too
	if got := st.all()[0].Rcpts[0]; got != forged {
		t.Errorf("stored %q, want %q", got, forged)
	}
}

// TestInboundPathLongLine: a MAIL line longer than go-smtp's limit is
// refused as a whole, never half-rewritten.
func TestInboundPathLongLine(t *testing.T) {
	t.Parallel()
	addr, _, st := startServer(t, Options{})
	c := dial(t, addr)
	c.hello()
	c.cmd(`MAIL FROM:<"`+strings.Repeat("x", 2100)+`"@example.test>`, "500 5.5.2 Line too long")
	c.expectClosed()
	if len(st.all()) != 0 {
		t.Fatal("stored")
	}
}

// FuzzRewritePath: whatever the argument, the rewritten command is one
// line, its stand-in is something go-smtp's dot-string parser passes
// through unchanged, and it maps back to exactly the mailbox
// mailbox.ParsePath reads from the original.
func FuzzRewritePath(f *testing.F) {
	for _, s := range []string{`<a@b.test>`, `<"x@y"@d.test> SIZE=1`, `<""@d.test>`, `<"a> b"@d.test>`, `<@r.test:u@d.test>`, `u@d.test`, `<a@b`, `<>`, `<"\"@x>`} {
		f.Add(s, false)
		f.Add(s, true)
	}
	s := &Server{pathKey: newPathKey()}
	f.Fuzz(func(t *testing.T, arg string, mail bool) {
		if strings.ContainsAny(arg, "\r\n") {
			return
		}
		verb, prefix := "RCPT TO:", "TO:"
		if mail {
			verb, prefix = "MAIL FROM:", "FROM:"
		}
		out, _ := s.rewritePath([]byte(verb+arg+"\r\n"), mail)
		if !strings.HasSuffix(string(out), "\r\n") || strings.ContainsAny(string(out[:len(out)-2]), "\r\n") {
			t.Fatalf("%q -> %q", arg, out)
		}
		rest := strings.TrimSpace(arg)
		if mail && strings.HasPrefix(rest, "<>") {
			return
		}
		m, n, err := mailbox.ParsePath(rest)
		if err != nil {
			return
		}
		line := strings.TrimSuffix(string(out), "\r\n")
		i := strings.Index(line, prefix+"<")
		j := strings.IndexByte(line[i:], '>')
		if i < 0 || j < 0 {
			t.Fatalf("%q -> %q: no path", arg, line)
		}
		standIn := line[i+len(prefix)+1 : i+j]
		at := strings.LastIndexByte(standIn, '@')
		for _, c := range standIn[:at] {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				t.Fatalf("%q -> stand-in %q", arg, standIn)
			}
		}
		back, err := s.envelopeAddress(standIn)
		if err != nil || back != m {
			t.Fatalf("%q -> %q -> %+v, %v; want %+v", arg, standIn, back, err, m)
		}
		if line[i+j+1:] != rest[n:] {
			t.Fatalf("%q: parameters %q became %q", arg, rest[n:], line[i+j+1:])
		}
	})
}
