package outbound

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/dsn"
	"sluice/reply"
)

// withBody sets d's body, as the scheduler does from the queue.
func withBody(d *Delivery, body string) *Delivery {
	d.Body, d.Size = strings.NewReader(body), int64(len(body))
	d.EightBit = strings.ContainsFunc(body, func(r rune) bool { return r >= 0x80 })
	return d
}

func testMsg(rcpts ...string) *Delivery {
	return withBody(&Delivery{ID: "M1", From: "app@src.test", Rcpts: rcpts}, "Subject: hi\r\n\r\nhello\r\n")
}

func testDial(t *testing.T, ob *Client) *Session {
	t.Helper()
	s, rep := ob.Dial(context.Background(), "dest.test")
	if rep != nil {
		t.Fatalf("Dial: %v", rep)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// wantReply checks the fields of a reply that a test cares about.
func wantReply(t *testing.T, got reply.Reply, stage reply.Stage, code int, enh string) {
	t.Helper()
	if got.Stage != stage || got.Code != code || got.Enhanced != enh {
		t.Errorf("reply = %+v (%v), want %s %d %s", got, got, stage, code, enh)
	}
}

func TestDialEHLOHostnameAroundSTARTTLS(t *testing.T) {
	t.Parallel()
	srvCfg, pool := testCert(t)
	tests := []struct {
		name    string
		mode    string
		roots   bool
		wantTLS bool
		wantErr bool
	}{
		{name: "opportunistic, unverified cert", mode: TLSOpportunistic, wantTLS: true},
		{name: "require, trusted cert", mode: TLSRequire, roots: true, wantTLS: true},
		// require is an alias of encrypt (issue 14): TLS without
		// verification; verify is the mode that checks the certificate.
		{name: "require, untrusted cert", mode: TLSRequire, wantTLS: true},
		{name: "verify, trusted cert", mode: TLSVerify, roots: true, wantTLS: true},
		{name: "verify, untrusted cert", mode: TLSVerify, wantErr: true},
		{name: "none never starts TLS", mode: TLSNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeMX(t, fakeCfg{tls: srvCfg, ext: []string{"8BITMIME"}})
			ob, rec := testClient(t, f, tt.mode, func(o *Options) {
				if tt.roots {
					o.TLSConfig = &tls.Config{RootCAs: pool}
				}
			})
			s, rep := ob.Dial(context.Background(), "dest.test")
			if tt.wantErr {
				if rep == nil || rep.Stage != reply.StageSTARTTLS || !errors.Is(rep.Err, reply.ErrTLSPolicy) {
					if rep == nil {
						s.Close()
					}
					t.Fatalf("reply = %v, want a STARTTLS tls-policy failure", rep)
				}
				if rec.count() != 1 {
					t.Errorf("dials = %d: require must not fall back to plaintext", rec.count())
				}
				return
			}
			if rep != nil {
				t.Fatalf("Dial: %v", rep)
			}
			defer s.Close()
			if s.TLS() != tt.wantTLS {
				t.Errorf("TLS = %v, want %v", s.TLS(), tt.wantTLS)
			}
			if got := s.Send(context.Background(), testMsg("a@dest.test")); got[0].Code != 250 {
				t.Errorf("Send = %v", got)
			}
			ehlos, _, _, _ := f.snapshot()
			want := []string{testHostname}
			if tt.wantTLS {
				want = append(want, testHostname)
			}
			if !slices.Equal(ehlos, want) {
				t.Errorf("EHLO names = %q, want %q", ehlos, want)
			}
		})
	}
}

func TestDialRequireWithoutSTARTTLS(t *testing.T) {
	t.Parallel()
	f := newFakeMX(t, fakeCfg{})
	ob, _ := testClient(t, f, TLSRequire, nil)
	_, rep := ob.Dial(context.Background(), "dest.test")
	if rep == nil || rep.Stage != reply.StageSTARTTLS || !errors.Is(rep.Err, errNoTLS) {
		t.Fatalf("reply = %v, want STARTTLS-stage errNoTLS", rep)
	}
	if f.countVerb("MAIL") != 0 {
		t.Error("mail sent without TLS")
	}
}

// A server that offers STARTTLS but cannot complete the handshake costs one
// extra connection, once: the failure is cached for the host.
func TestDialOpportunisticFallbackCached(t *testing.T) {
	t.Parallel()
	f := newFakeMX(t, fakeCfg{brokenTLS: true})
	clock := &fakeClock{}
	ob, rec := testClient(t, f, TLSOpportunistic, func(o *Options) {
		o.Now = clock.Now
		o.TLSCacheTTL = time.Minute
	})
	steps := []struct {
		advance   time.Duration
		wantDials int // cumulative
		wantTLSs  int // cumulative STARTTLS commands seen
	}{
		{0, 2, 1},               // STARTTLS fails, fresh plaintext connection
		{0, 3, 1},               // cached: straight to plaintext
		{2 * time.Minute, 5, 2}, // cache expired: try TLS again
	}
	for i, st := range steps {
		clock.Advance(st.advance)
		s, rep := ob.Dial(context.Background(), "dest.test")
		if rep != nil {
			t.Fatalf("step %d: Dial: %v", i, rep)
		}
		if s.TLS() {
			t.Errorf("step %d: TLS on a broken server", i)
		}
		if got := s.Send(context.Background(), testMsg("a@dest.test")); got[0].Code != 250 {
			t.Errorf("step %d: Send = %v", i, got)
		}
		s.Close()
		if rec.count() != st.wantDials || f.countVerb("STARTTLS") != st.wantTLSs {
			t.Errorf("step %d: dials = %d, STARTTLS = %d; want %d, %d", i, rec.count(), f.countVerb("STARTTLS"), st.wantDials, st.wantTLSs)
		}
		if offered, known := ob.STARTTLSOffered(f.addr); !known || !offered {
			t.Errorf("step %d: STARTTLSOffered = %v, %v", i, offered, known)
		}
	}
}

func TestSendTransactions(t *testing.T) {
	t.Parallel()
	type want struct {
		stage reply.Stage
		code  int
		enh   string
	}
	ok := want{reply.StageDataEnd, 250, "2.0.0"}
	// proto: a protocol error at the stage (issue 9 item 1): never a
	// delivery, the session is dropped without QUIT.
	proto := func(st reply.Stage) want { return want{st, -1, ""} }
	tests := []struct {
		name       string
		cfg        fakeCfg
		d          *Delivery
		want       []want
		wantUsable bool
		wantCmds   []string // verbs (or full lines) that must appear
		noCmds     []string // verbs that must not appear
		wantBody   string
		noBody     bool // no message may reach the receiver
	}{
		{
			name: "RCPT partial failure",
			cfg:  fakeCfg{replies: map[string]string{"RCPT TO:<bad@dest.test>": "550 5.1.1 no such user"}},
			d:    testMsg("a@dest.test", "bad@dest.test", "c@dest.test"),
			want: []want{ok, {reply.StageRcpt, 550, "5.1.1"}, ok}, wantUsable: true,
			wantCmds: []string{"DATA"}, noCmds: []string{"RSET"},
		},
		{
			name: "no recipient accepted: RSET, no DATA",
			cfg:  fakeCfg{replies: map[string]string{"RCPT": "450 4.2.1 slow down"}},
			d:    testMsg("a@dest.test", "b@dest.test"),
			want: []want{{reply.StageRcpt, 450, "4.2.1"}, {reply.StageRcpt, 450, "4.2.1"}}, wantUsable: true,
			wantCmds: []string{"RSET"}, noCmds: []string{"DATA"},
		},
		{
			name:   "421 at MAIL ends the session",
			cfg:    fakeCfg{replies: map[string]string{"MAIL": "421 4.7.0 Try again later, closing connection."}},
			d:      testMsg("a@dest.test", "b@dest.test"),
			want:   []want{{reply.StageMail, 421, "4.7.0"}, {reply.StageMail, 421, "4.7.0"}},
			noCmds: []string{"RCPT", "RSET"},
		},
		{
			name:   "421 at RCPT fails the accepted ones too",
			cfg:    fakeCfg{replies: map[string]string{"RCPT TO:<b@dest.test>": "421 4.7.0 too many"}},
			d:      testMsg("a@dest.test", "b@dest.test", "c@dest.test"),
			want:   []want{{reply.StageRcpt, 421, "4.7.0"}, {reply.StageRcpt, 421, "4.7.0"}, {reply.StageRcpt, 421, "4.7.0"}},
			noCmds: []string{"DATA", "RCPT TO:<c@dest.test>"},
		},
		{
			name: "MAIL refused: RSET after",
			cfg:  fakeCfg{replies: map[string]string{"MAIL": "550 5.7.1 sender refused"}},
			d:    testMsg("a@dest.test"),
			want: []want{{reply.StageMail, 550, "5.7.1"}}, wantUsable: true,
			wantCmds: []string{"RSET"}, noCmds: []string{"RCPT"},
		},
		{
			name: "DATA end refusal applies to every accepted recipient",
			cfg:  fakeCfg{replies: map[string]string{".": "554 5.7.1 spam"}},
			d:    testMsg("a@dest.test", "b@dest.test"),
			want: []want{{reply.StageDataEnd, 554, "5.7.1"}, {reply.StageDataEnd, 554, "5.7.1"}}, wantUsable: true,
			wantCmds: []string{"RSET"},
		},
		{
			name: "SMTPUTF8 to a server without it",
			cfg:  fakeCfg{},
			d:    withBody(&Delivery{From: "app@src.test", Rcpts: []string{"ü@dest.test", "b@dest.test"}, SMTPUTF8: true}, "x\r\n"),
			want: []want{{reply.StageMail, 553, "5.6.7"}, {reply.StageMail, 553, "5.6.7"}}, wantUsable: true,
			noCmds: []string{"MAIL"},
		},
		{
			name: "SMTPUTF8 passed on MAIL",
			cfg:  fakeCfg{ext: []string{"SMTPUTF8", "8BITMIME"}},
			d:    withBody(&Delivery{From: "app@src.test", Rcpts: []string{"ü@dest.test"}, SMTPUTF8: true}, "x\r\n"),
			want: []want{ok}, wantUsable: true,
			wantCmds: []string{"MAIL FROM:<app@src.test> SMTPUTF8"},
		},
		{
			name: "8-bit body gets BODY=8BITMIME and SIZE",
			cfg:  fakeCfg{ext: []string{"8BITMIME", "SIZE 1000"}},
			d:    withBody(&Delivery{From: "app@src.test", Rcpts: []string{"a@dest.test"}}, "caf\xc3\xa9\r\n"),
			want: []want{ok}, wantUsable: true,
			wantCmds: []string{"MAIL FROM:<app@src.test> BODY=8BITMIME SIZE=7"},
		},
		{
			name: "8-bit header without SMTPUTF8 goes as is to a 7-bit peer",
			cfg:  fakeCfg{},
			d:    withBody(&Delivery{From: "app@src.test", Rcpts: []string{"a@dest.test"}}, "Subject: caf\xc3\xa9\r\n\r\nx\r\n"),
			want: []want{ok}, wantUsable: true,
			noCmds:   []string{"MAIL FROM:<app@src.test> BODY=8BITMIME", "MAIL FROM:<app@src.test> SMTPUTF8"},
			wantBody: "Subject: caf\xc3\xa9\r\n\r\nx\r\n",
		},
		{
			// RFC 5321 §4.1.2: the local part goes out quoted where it is
			// not a Dot-string, whatever form it was stored in (a legacy
			// dot-atom is quoted as Postfix does).
			name: "quoted local parts quoted again on the wire",
			d: withBody(&Delivery{From: `"s@x"@src.test`, Rcpts: []string{`"john@doe"@dest.test`, `""@dest.test`, `"a>b"@dest.test`, "first..last@dest.test", `"plain"@dest.test`}},
				"x\r\n"),
			want: []want{ok, ok, ok, ok, ok}, wantUsable: true,
			wantCmds: []string{`MAIL FROM:<"s@x"@src.test>`, `RCPT TO:<"john@doe"@dest.test>`, `RCPT TO:<""@dest.test>`,
				`RCPT TO:<"a>b"@dest.test>`, `RCPT TO:<"first..last"@dest.test>`, "RCPT TO:<plain@dest.test>"},
		},
		{
			// RFC 3461 §5.2: to a next hop that offers DSN, the
			// parameters go on as received, ENVID and ORCPT as xtext.
			name: "DSN parameters passed on to a DSN next hop",
			cfg:  fakeCfg{ext: []string{"DSN"}},
			d: withBody(&Delivery{From: "app@src.test", Rcpts: []string{"a@dest.test", "b@dest.test", "c@dest.test"},
				Env:     dsn.Envelope{Ret: dsn.RetHdrs, EnvID: "env+1"},
				RcptDSN: []dsn.Rcpt{{Notify: dsn.NotifySuccess | dsn.NotifyFailure, ORcpt: "rfc822;o+a@dest.test"}, {}, {Notify: dsn.NotifyNever}}}, "x\r\n"),
			want: []want{ok, ok, ok}, wantUsable: true,
			wantCmds: []string{"MAIL FROM:<app@src.test> RET=HDRS ENVID=env+2B1", "RCPT TO:<a@dest.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;o+2Ba@dest.test",
				"RCPT TO:<b@dest.test>", "RCPT TO:<c@dest.test> NOTIFY=NEVER"},
		},
		{
			name: "DSN parameters not sent to a next hop without DSN",
			cfg:  fakeCfg{},
			d: withBody(&Delivery{From: "app@src.test", Rcpts: []string{"a@dest.test"},
				Env: dsn.Envelope{Ret: dsn.RetFull, EnvID: "e"}, RcptDSN: []dsn.Rcpt{{Notify: dsn.NotifySuccess, ORcpt: "rfc822;a@dest.test"}}}, "x\r\n"),
			want: []want{ok}, wantUsable: true,
			wantCmds: []string{"MAIL FROM:<app@src.test>", "RCPT TO:<a@dest.test>"}, noCmds: []string{"MAIL FROM:<app@src.test> RET=FULL ENVID=e", "RCPT TO:<a@dest.test> NOTIFY=SUCCESS ORCPT=rfc822;a@dest.test"},
		},
		{
			name: "7-bit body: no BODY parameter",
			cfg:  fakeCfg{ext: []string{"8BITMIME"}},
			d:    testMsg("a@dest.test"),
			want: []want{ok}, wantUsable: true,
			wantCmds: []string{"MAIL FROM:<app@src.test>"},
		},
		{
			// Found while streaming: the connection is dropped before
			// the final dot, so the receiver discards the transaction.
			name:     "bare CR: dropped before the final dot",
			d:        withBody(&Delivery{From: "app@src.test", Rcpts: []string{"a@dest.test"}}, "a\rRCPT TO:<x@evil.test>\r\n"),
			want:     []want{{reply.StageData, 554, "5.6.0"}},
			wantCmds: []string{"DATA"}, noCmds: []string{"RSET", "QUIT", "RCPT TO:<x@evil.test>"}, noBody: true,
		},
		{
			name:     "bare LF: dropped before the final dot",
			d:        withBody(&Delivery{From: "app@src.test", Rcpts: []string{"a@dest.test"}}, "a\n.\nMAIL FROM:<x@evil.test>\r\n"),
			want:     []want{{reply.StageData, 554, "5.6.0"}},
			wantCmds: []string{"DATA"}, noCmds: []string{"RSET", "QUIT", "MAIL FROM:<x@evil.test>"}, noBody: true,
		},
		{
			name:     "bare LF deep in a large body",
			d:        withBody(&Delivery{From: "app@src.test", Rcpts: []string{"a@dest.test"}}, strings.Repeat("line\r\n", 50000)+"x\n.\r\n"),
			want:     []want{{reply.StageData, 554, "5.6.0"}},
			wantCmds: []string{"DATA"}, noCmds: []string{"RSET", "QUIT"}, noBody: true,
		},
		{
			name: "dot-stuffing and final CRLF",
			d:    withBody(&Delivery{From: "app@src.test", Rcpts: []string{"a@dest.test"}}, ".hidden\r\n..two\r\nlast"),
			want: []want{ok}, wantUsable: true,
			wantBody: "..hidden\r\n...two\r\nlast\r\n",
		},
		{
			name: "malformed recipient skipped",
			d:    testMsg("a@dest.test", "x>@dest.test"),
			want: []want{ok, {reply.StageRcpt, 553, "5.1.3"}}, wantUsable: true,
		},
		{
			name:   "250 to DATA is not a delivery",
			cfg:    fakeCfg{replies: map[string]string{"DATA": "250 2.0.0 Ok"}},
			d:      testMsg("a@dest.test", "b@dest.test"),
			want:   []want{proto(reply.StageData), proto(reply.StageData)},
			noCmds: []string{"RSET", "QUIT"},
		},
		{
			name:   "354 to MAIL",
			cfg:    fakeCfg{replies: map[string]string{"MAIL": "354 go ahead"}},
			d:      testMsg("a@dest.test"),
			want:   []want{proto(reply.StageMail)},
			noCmds: []string{"RCPT", "RSET", "QUIT"},
		},
		{
			name: "252 to RCPT voids the whole transaction",
			cfg: fakeCfg{replies: map[string]string{
				"RCPT TO:<a@dest.test>": "550 5.1.1 no such user",
				"RCPT TO:<b@dest.test>": "252 2.1.5 cannot verify",
			}},
			d:      testMsg("a@dest.test", "b@dest.test", "c@dest.test", "x>@dest.test"),
			want:   []want{proto(reply.StageRcpt), proto(reply.StageRcpt), proto(reply.StageRcpt), {reply.StageRcpt, 553, "5.1.3"}},
			noCmds: []string{"DATA", "RCPT TO:<c@dest.test>", "QUIT"},
		},
		{
			name:   "354 after the final dot",
			cfg:    fakeCfg{replies: map[string]string{".": "354 more please"}},
			d:      testMsg("a@dest.test"),
			want:   []want{proto(reply.StageDataEnd)},
			noCmds: []string{"RSET", "QUIT"},
		},
		{
			name:   "extra reply after the final one, same segment",
			cfg:    fakeCfg{replies: map[string]string{".": "554 5.7.1 rejected\r\n250 2.0.0 extra"}},
			d:      testMsg("a@dest.test", "b@dest.test"),
			want:   []want{proto(reply.StageDataEnd), proto(reply.StageDataEnd)},
			noCmds: []string{"RSET", "QUIT"},
		},
		{
			name:   "extra reply after a 250 to the final dot, same segment",
			cfg:    fakeCfg{replies: map[string]string{".": "250 2.0.0 queued\r\n250 2.0.0 extra"}},
			d:      testMsg("a@dest.test"),
			want:   []want{proto(reply.StageDataEnd)},
			noCmds: []string{"QUIT"},
		},
		{
			name:   "extra reply after MAIL's, same segment",
			cfg:    fakeCfg{replies: map[string]string{"MAIL": "250 2.1.0 ok\r\n250 2.1.5 ok"}},
			d:      testMsg("a@dest.test"),
			want:   []want{proto(reply.StageMail)},
			noCmds: []string{"RCPT", "QUIT"},
		},
		{
			name:   "RSET answered 354 voids the refusal",
			cfg:    fakeCfg{replies: map[string]string{"MAIL": "550 5.7.1 sender refused", "RSET": "354 go ahead"}},
			d:      testMsg("a@dest.test"),
			want:   []want{proto(reply.StageMail)},
			noCmds: []string{"RCPT", "QUIT"},
		},
		{
			name:       "251 after the final dot is a delivery",
			cfg:        fakeCfg{replies: map[string]string{".": "251 2.1.5 forwarded"}},
			d:          testMsg("a@dest.test"),
			want:       []want{{reply.StageDataEnd, 251, "2.1.5"}},
			wantUsable: true, wantCmds: []string{"QUIT"},
		},
		{
			name: "multi-line reply with repeated enhanced code",
			cfg:  fakeCfg{replies: map[string]string{".": "451-4.7.500 Server busy.\r\n451 4.7.500 Please try again later."}},
			d:    testMsg("a@dest.test"),
			want: []want{{reply.StageDataEnd, 451, "4.7.500"}}, wantUsable: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeMX(t, tt.cfg)
			ob, _ := testClient(t, f, TLSNone, nil)
			s := testDial(t, ob)
			got := s.Send(context.Background(), tt.d)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d replies, want %d", len(got), len(tt.want))
			}
			for i, w := range tt.want {
				if w.code == -1 {
					if got[i].Stage != w.stage || got[i].Code != 0 || !errors.Is(got[i].Err, reply.ErrProtocol) {
						t.Errorf("reply %d = %+v (%v), want a protocol error at %s", i, got[i], got[i], w.stage)
					}
					continue
				}
				wantReply(t, got[i], w.stage, w.code, w.enh)
			}
			if s.Usable() != tt.wantUsable {
				t.Errorf("Usable = %v, want %v", s.Usable(), tt.wantUsable)
			}
			s.Close()
			_, cmds, bodies, _ := f.snapshot()
			has := func(c string) bool {
				return slices.ContainsFunc(cmds, func(l string) bool {
					return l == c || strings.HasPrefix(l, c+" ") || (!strings.Contains(c, " ") && strings.HasPrefix(l, c))
				})
			}
			for _, c := range tt.wantCmds {
				if !has(c) {
					t.Errorf("command %q not sent; got %q", c, cmds)
				}
			}
			for _, c := range tt.noCmds {
				if has(c) {
					t.Errorf("command %q sent; got %q", c, cmds)
				}
			}
			if tt.wantBody != "" && (len(bodies) != 1 || bodies[0] != tt.wantBody) {
				t.Errorf("body on the wire = %q, want %q", bodies, tt.wantBody)
			}
			if tt.noBody && len(bodies) != 0 {
				t.Errorf("the receiver got a message: %q", bodies)
			}
		})
	}
}

func TestSendReusesConnection(t *testing.T) {
	t.Parallel()
	f := newFakeMX(t, fakeCfg{})
	ob, rec := testClient(t, f, TLSNone, nil)
	s := testDial(t, ob)
	for i := range 2 {
		if got := s.Send(context.Background(), testMsg("a@dest.test")); got[0].Code != 250 {
			t.Fatalf("send %d: %v", i, got)
		}
	}
	if s.Sent() != 2 || !s.Usable() {
		t.Errorf("Sent = %d, Usable = %v", s.Sent(), s.Usable())
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if rec.count() != 1 || f.countVerb("EHLO") != 1 || f.countVerb("RSET") != 0 || f.countVerb("MAIL") != 2 || f.countVerb("QUIT") != 1 {
		_, cmds, _, _ := f.snapshot()
		t.Errorf("dials = %d, commands = %q", rec.count(), cmds)
	}
	if got := s.Send(context.Background(), testMsg("a@dest.test")); got[0].Err == nil {
		t.Errorf("Send after Close = %v", got)
	}
}

// Data that arrives in a later segment, after a final reply and before
// the next command, is a protocol error (issue 9 item 1): the next
// transaction is not sent and nothing in it counts as delivered. Plain
// and over TLS, where only the decrypted stream may decide (a TLS 1.3
// server sends session tickets on the same socket).
func TestSendUnsolicitedBeforeNextCommand(t *testing.T) {
	t.Parallel()
	srvCfg, _ := testCert(t)
	for _, mode := range []string{TLSNone, TLSOpportunistic} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			cfg := fakeCfg{afterDot: "250 2.0.0 extra", wroteAfterDot: make(chan struct{}), releaseAfter: make(chan struct{})}
			if mode != TLSNone {
				cfg.tls = srvCfg
			}
			f := newFakeMX(t, cfg)
			ob, _ := testClient(t, f, mode, nil)
			s := testDial(t, ob)
			if s.TLS() != (mode != TLSNone) {
				t.Fatalf("TLS = %v", s.TLS())
			}
			if got := s.Send(context.Background(), testMsg("a@dest.test")); got[0].Code != 250 || !s.Usable() {
				t.Fatalf("first send: %v, usable %v", got, s.Usable())
			}
			close(cfg.releaseAfter)
			<-cfg.wroteAfterDot
			// The fake's write has returned; wait until the bytes are on
			// our socket (loopback may hand them over in a softirq).
			deadline := time.Now().Add(10 * time.Second)
			for !socketReadable(s.w.sock) {
				if time.Now().After(deadline) {
					t.Fatal("the extra reply never reached the socket")
				}
				time.Sleep(time.Millisecond)
			}
			got := s.Send(context.Background(), testMsg("b@dest.test", "c@dest.test"))
			for i, r := range got {
				if r.Stage != reply.StageMail || !errors.Is(r.Err, reply.ErrProtocol) || !strings.Contains(r.Err.Error(), "250 2.0.0 extra") {
					t.Errorf("reply %d = %v, want a protocol error at MAIL naming the extra reply", i, r)
				}
			}
			if s.Usable() {
				t.Error("session still usable")
			}
			s.Close()
			if n := f.countVerb("MAIL"); n != 1 {
				t.Errorf("MAIL sent %d times, want 1 (the second transaction must not start)", n)
			}
			if n := f.countVerb("QUIT"); n != 0 {
				t.Errorf("QUIT sent on a desynchronised session")
			}
		})
	}
}

// A refusal followed by a reply that the client has not read yet (still
// on the socket, as if in a later segment) is not trusted: no bounce on
// its word, and no RSET whose reply could be the extra one.
func TestSendExtraReplyOnSocketAfterFinalReply(t *testing.T) {
	t.Parallel()
	for _, final := range []string{"554 5.7.1 rejected", "250 2.0.0 queued"} {
		t.Run(final[:3], func(t *testing.T) {
			t.Parallel()
			f := newFakeMX(t, fakeCfg{replies: map[string]string{".": final + "\r\n250 2.0.0 extra"}})
			ob, _ := testClient(t, f, TLSNone, func(o *Options) { o.Dialer = lineDialer })
			s := testDial(t, ob)
			got := s.Send(context.Background(), testMsg("a@dest.test"))
			if got[0].Stage != reply.StageDataEnd || !errors.Is(got[0].Err, reply.ErrProtocol) || !strings.Contains(got[0].Err.Error(), "250 2.0.0 extra") {
				t.Fatalf("reply = %v, want a protocol error at data-end naming the extra reply", got[0])
			}
			if s.Usable() || s.Sent() != 0 {
				t.Errorf("usable %v, sent %d", s.Usable(), s.Sent())
			}
			s.Close()
			if n := f.countVerb("RSET") + f.countVerb("QUIT"); n != 0 {
				_, cmds, _, _ := f.snapshot()
				t.Errorf("commands after the final reply: %q", cmds)
			}
		})
	}
}

// The body write runs under DataTimeout from the injected clock: a clock
// that jumps past it while the server answers DATA makes the write fail
// at once, deterministically.
func TestSendDataDeadline(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{}
	f := newFakeMX(t, fakeCfg{onData: func() { clock.Advance(-time.Hour) }})
	ob, _ := testClient(t, f, TLSNone, func(o *Options) {
		o.Now = clock.Now
		o.DataTimeout = time.Minute
	})
	s := testDial(t, ob)
	got := s.Send(context.Background(), testMsg("a@dest.test"))
	if got[0].Stage != reply.StageData || !errors.Is(got[0].Err, os.ErrDeadlineExceeded) {
		t.Fatalf("reply = %+v, want data-stage deadline error", got[0])
	}
	if s.Usable() {
		t.Error("session usable after a timeout")
	}
}

func TestSendContextCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	f := newFakeMX(t, fakeCfg{onData: cancel})
	ob, _ := testClient(t, f, TLSNone, nil)
	s := testDial(t, ob)
	got := s.Send(ctx, testMsg("a@dest.test"))
	if got[0].Err == nil || !errors.Is(got[0].Err, context.Canceled) || s.Usable() {
		t.Fatalf("reply = %+v, usable = %v", got[0], s.Usable())
	}
}

func TestDialLoop(t *testing.T) {
	t.Parallel()
	f := newFakeMX(t, fakeCfg{})
	tests := []struct {
		name  string
		local netip.AddrPort
	}{
		{"exact listener", f.addr},
		{"wildcard listener", netip.AddrPortFrom(netip.IPv4Unspecified(), f.addr.Port())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ob, rec := testClient(t, f, TLSNone, func(o *Options) { o.LocalAddrs = []netip.AddrPort{tt.local} })
			_, rep := ob.Dial(context.Background(), "dest.test")
			if rep == nil {
				t.Fatal("no loop detected")
			}
			wantReply(t, *rep, reply.StageConnect, 554, "5.4.6")
			if rep.Text != "mail for dest.test loops back to myself" || rec.count() != 0 {
				t.Errorf("text = %q, dials = %d", rep.Text, rec.count())
			}
		})
	}
}

// Connection failures and 4xx greetings move on to the next MX; a 5xx
// greeting is an answer.
func TestDialMovesOn(t *testing.T) {
	t.Parallel()
	busy := newFakeMX(t, fakeCfg{greeting: "421 4.3.2 busy"})
	good := newFakeMX(t, fakeCfg{})
	refuse := newFakeMX(t, fakeCfg{greeting: "554 5.7.1 go away"})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := closed.Addr().String()
	closed.Close()

	res := &fakeResolver{
		mx: map[string][]*net.MX{
			"dest.test": {{Host: "a.mx.test", Pref: 1}, {Host: "b.mx.test", Pref: 2}, {Host: "c.mx.test", Pref: 3}},
			"bad.test":  {{Host: "d.mx.test", Pref: 1}, {Host: "c.mx.test", Pref: 2}},
		},
		hosts: map[string][]string{"a.mx.test": {"192.0.2.1"}, "b.mx.test": {"192.0.2.2"}, "c.mx.test": {"192.0.2.3"}, "d.mx.test": {"192.0.2.4"}},
	}
	rec := &dialRecorder{redirect: map[string]string{
		"192.0.2.1:25": deadAddr, "192.0.2.2:25": busy.addr.String(),
		"192.0.2.3:25": good.addr.String(), "192.0.2.4:25": refuse.addr.String(),
	}}
	o := testOptions()
	o.TLS, o.Resolver, o.Dialer = TLSNone, res, rec.Dialer
	ob, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	s, rep := ob.Dial(context.Background(), "dest.test")
	if rep != nil {
		t.Fatalf("Dial: %v", rep)
	}
	defer s.Close()
	if s.Relay() != "c.mx.test[192.0.2.3]:25" || rec.count() != 3 {
		t.Errorf("Relay = %s after %d dials", s.Relay(), rec.count())
	}
	_, rep = ob.Dial(context.Background(), "bad.test")
	if rep == nil {
		t.Fatal("5xx greeting: no reply")
	}
	wantReply(t, *rep, reply.StageGreeting, 554, "5.7.1")
}

func TestDialSmarthostAuth(t *testing.T) {
	t.Parallel()
	srvCfg, _ := testCert(t)
	tests := []struct {
		name     string
		tls      string
		wantErr  error
		wantAuth bool
	}{
		{name: "over TLS", tls: TLSOpportunistic, wantAuth: true},
		{name: "refused in clear", tls: TLSNone, wantErr: errCredsInClear},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeMX(t, fakeCfg{tls: srvCfg, ext: []string{"AUTH PLAIN"}})
			ob, _ := testClient(t, nil, "", func(o *Options) {
				o.Smarthost = &Smarthost{Host: f.addr.String(), Username: "user", Password: "secret", TLS: tt.tls}
			})
			s, rep := ob.Dial(context.Background(), "anywhere.test")
			if tt.wantErr != nil {
				if rep == nil || rep.Stage != reply.StageAuth || !errors.Is(rep.Err, tt.wantErr) {
					t.Fatalf("reply = %v", rep)
				}
			} else {
				if rep != nil {
					t.Fatalf("Dial: %v", rep)
				}
				s.Close()
			}
			_, cmds, _, _ := f.snapshot()
			tok := base64.StdEncoding.EncodeToString([]byte("\x00user\x00secret"))
			if got := slices.Contains(cmds, "AUTH PLAIN "+tok); got != tt.wantAuth {
				t.Errorf("AUTH sent = %v, commands %q", got, cmds)
			}
		})
	}
}

func TestDialBindsOutboundIP(t *testing.T) {
	t.Parallel()
	f := newFakeMX(t, fakeCfg{})
	ob, rec := testClient(t, f, TLSNone, func(o *Options) {
		o.OutboundIPs = []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("127.0.0.1")}
	})
	s := testDial(t, ob)
	s.Close()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.locals) != 1 || rec.locals[0] != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("local addrs = %v", rec.locals)
	}
}

// The default dialer really binds the source address.
func TestDialDefaultDialerBinds(t *testing.T) {
	t.Parallel()
	f := newFakeMX(t, fakeCfg{})
	o := testOptions()
	o.TLS = TLSNone // the default dialer
	o.Routes = map[string]Route{"dest.test": {Host: f.addr.String(), TLS: TLSNone}}
	o.OutboundIPs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	ob, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	s := testDial(t, ob)
	if la := netip.MustParseAddrPort(s.raw.LocalAddr().String()).Addr(); la != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("local address = %v", la)
	}
}

// A refused STARTTLS leaves the connection in plaintext (RFC 3207 §4):
// opportunistic mode carries on over it, require gives up.
func TestDialSTARTTLSRefused(t *testing.T) {
	t.Parallel()
	srvCfg, _ := testCert(t)
	tests := []struct {
		mode    string
		wantRep bool
	}{
		{TLSOpportunistic, false},
		{TLSRequire, true},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			f := newFakeMX(t, fakeCfg{tls: srvCfg, replies: map[string]string{"STARTTLS": "454 4.7.0 TLS not available"}})
			ob, rec := testClient(t, f, tt.mode, nil)
			s, rep := ob.Dial(context.Background(), "dest.test")
			if tt.wantRep {
				if rep == nil {
					t.Fatal("no reply")
				}
				wantReply(t, *rep, reply.StageSTARTTLS, 454, "4.7.0")
				return
			}
			if rep != nil {
				t.Fatalf("Dial: %v", rep)
			}
			defer s.Close()
			if got := s.Send(context.Background(), testMsg("a@dest.test")); got[0].Code != 250 || s.TLS() || rec.count() != 1 {
				t.Errorf("Send = %v, TLS = %v, dials = %d", got, s.TLS(), rec.count())
			}
		})
	}
}

// A server that does not know EHLO still hears our hostname, in HELO
// (RFC 5321 §3.2), and gets no extension parameters.
func TestDialHELOFallback(t *testing.T) {
	t.Parallel()
	f := newFakeMX(t, fakeCfg{replies: map[string]string{"EHLO": "502 5.5.1 command not recognised"}})
	ob, _ := testClient(t, f, TLSOpportunistic, nil)
	s := testDial(t, ob)
	got := s.Send(context.Background(), withBody(&Delivery{From: "app@src.test", Rcpts: []string{"a@dest.test"}}, "caf\xc3\xa9\r\n"))
	if got[0].Code != 250 {
		t.Fatalf("Send = %v", got)
	}
	_, cmds, _, _ := f.snapshot()
	if !slices.Contains(cmds, "HELO "+testHostname) || !slices.Contains(cmds, "MAIL FROM:<app@src.test>") {
		t.Errorf("commands = %q", cmds)
	}
}

func TestSendSizeLimit(t *testing.T) {
	t.Parallel()
	f := newFakeMX(t, fakeCfg{ext: []string{"SIZE 10"}})
	ob, _ := testClient(t, f, TLSNone, nil)
	s := testDial(t, ob)
	got := s.Send(context.Background(), testMsg("a@dest.test"))
	wantReply(t, got[0], reply.StageMail, 552, "5.3.4")
	if f.countVerb("MAIL") != 0 || !s.Usable() {
		t.Errorf("MAIL sent = %d, usable = %v", f.countVerb("MAIL"), s.Usable())
	}
}

func TestDialCancelled(t *testing.T) {
	t.Parallel()
	f := newFakeMX(t, fakeCfg{})
	ob, _ := testClient(t, f, TLSNone, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, rep := ob.Dial(ctx, "dest.test")
	if s != nil || rep == nil || rep.Err == nil {
		t.Fatalf("Dial with a cancelled context = %v, %v", s, rep)
	}
}

// Before MAIL, a 2xx/3xx other than the one each step expects is a
// protocol error too, never a reply the scheduler could read as success
// (issue 9 item 1): the old code handed a "250" greeting up as the reply.
func TestDialUnexpectedCodes(t *testing.T) {
	t.Parallel()
	srvCfg, _ := testCert(t)
	tests := []struct {
		name  string
		cfg   fakeCfg
		stage reply.Stage
	}{
		{"250 greeting", fakeCfg{greeting: "250 mx.test hello"}, reply.StageGreeting},
		{"220 to EHLO", fakeCfg{replies: map[string]string{"EHLO": "220 mx.test"}}, reply.StageEHLO},
		{"251 to HELO", fakeCfg{replies: map[string]string{"EHLO": "502 5.5.1 no", "HELO": "251 mx.test"}}, reply.StageEHLO},
		{"250 to STARTTLS", fakeCfg{tls: srvCfg, replies: map[string]string{"STARTTLS": "250 2.0.0 ok"}}, reply.StageSTARTTLS},
		{"data after the STARTTLS 220", fakeCfg{tls: srvCfg, replies: map[string]string{"STARTTLS": "220 2.0.0 go\r\n250 injected"}}, reply.StageSTARTTLS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeMX(t, tt.cfg)
			ob, _ := testClient(t, f, TLSOpportunistic, nil)
			s, rep := ob.Dial(context.Background(), "dest.test")
			if s != nil {
				s.Close()
				t.Fatal("Dial succeeded")
			}
			if rep.Stage != tt.stage || rep.Code != 0 || !errors.Is(rep.Err, reply.ErrProtocol) {
				t.Errorf("reply = %+v (%v), want a protocol error at %s", *rep, rep, tt.stage)
			}
			if n := f.countVerb("QUIT"); n != 0 {
				t.Errorf("QUIT sent after a protocol error")
			}
		})
	}
}

// Domains hosted behind the same MX hosts share a next hop, and a session
// opened for one may carry the other's mail (issue 9 item 26). A
// different host set, other preference levels, another route or TLS mode
// is another next hop.
func TestSessionSameNextHop(t *testing.T) {
	t.Parallel()
	f := newFakeMX(t, fakeCfg{})
	mx := func(prefHost ...any) []*net.MX {
		var out []*net.MX
		for i := 0; i < len(prefHost); i += 2 {
			out = append(out, &net.MX{Pref: uint16(prefHost[i].(int)), Host: prefHost[i+1].(string)})
		}
		return out
	}
	res := &fakeResolver{
		mx: map[string][]*net.MX{
			"a.test":      mx(10, "mx1.shared.test.", 20, "mx2.shared.test."),
			"b.test":      mx(20, "MX2.shared.test", 10, "mx1.shared.test"), // same set, other order and case
			"c.test":      mx(5, "mx1.shared.test", 7, "mx2.shared.test"),   // same levels, other numbers
			"d.test":      mx(10, "mx1.shared.test", 10, "mx2.shared.test"), // one level: another next hop
			"e.test":      mx(10, "mx1.shared.test"),
			"routed.test": mx(10, "mx1.shared.test", 20, "mx2.shared.test"),
		},
		hosts: map[string][]string{"mx1.shared.test": {"127.0.0.1"}, "mx2.shared.test": {"127.0.0.1"}},
	}
	ob, _ := testClient(t, f, TLSNone, func(o *Options) {
		o.Resolver = res
		o.Port = int(f.addr.Port())
		o.TLS = TLSNone
		o.Routes = map[string]Route{"routed.test": {Host: f.addr.String(), TLS: TLSNone}, "dest.test": {Host: f.addr.String(), TLS: TLSNone}}
	})
	s, rep := ob.Dial(context.Background(), "a.test")
	if rep != nil {
		t.Fatalf("Dial: %v", rep)
	}
	defer s.Close()
	for dom, want := range map[string]bool{"a.test": true, "A.TEST.": true, "b.test": true, "c.test": true, "d.test": false, "e.test": false, "routed.test": false, "nx.test": false} {
		if got := s.SameNextHop(context.Background(), dom); got != want {
			t.Errorf("SameNextHop(%s) = %v, want %v", dom, got, want)
		}
	}
	r, rep := ob.Dial(context.Background(), "routed.test")
	if rep != nil {
		t.Fatalf("Dial: %v", rep)
	}
	defer r.Close()
	if !r.SameNextHop(context.Background(), "dest.test") || r.SameNextHop(context.Background(), "a.test") {
		t.Error("two routes to one host:port are one next hop; an MX domain is not")
	}
}

// A server that drops an idle connection, with a 421 first (RFC 5321
// §3.8) or without a word, makes the session unusable before the next
// transaction: the caller reconnects instead of failing a message.
func TestSessionUnusableAfterServerDropsIdleConnection(t *testing.T) {
	t.Parallel()
	for _, bye := range []string{"421 4.4.2 idle timeout, closing connection", ""} {
		t.Run(fmt.Sprintf("%q", bye), func(t *testing.T) {
			t.Parallel()
			cfg := fakeCfg{wroteAfterDot: make(chan struct{}), releaseAfter: make(chan struct{})}
			cfg.afterDot = bye
			if bye == "" {
				cfg.afterDot = "CLOSE"
			}
			f := newFakeMX(t, cfg)
			ob, _ := testClient(t, f, TLSNone, nil)
			s := testDial(t, ob)
			if got := s.Send(context.Background(), testMsg("a@dest.test")); got[0].Code != 250 || !s.Usable() {
				t.Fatalf("send: %v, usable %v", got, s.Usable())
			}
			close(cfg.releaseAfter)
			<-cfg.wroteAfterDot
			deadline := time.Now().Add(10 * time.Second)
			for s.Usable() {
				if time.Now().After(deadline) {
					t.Fatal("still usable after the server dropped the connection")
				}
				time.Sleep(time.Millisecond)
			}
			if got := s.Send(context.Background(), testMsg("b@dest.test")); !errors.Is(got[0].Err, errUnusable) {
				t.Errorf("Send on a dropped session = %v", got[0])
			}
		})
	}
}

// A receiver counts a session until it has hung up (RFC 5321 §4.1.1.10:
// it replies 221 to QUIT, then closes the channel): Close returns when
// the receiver has closed (or after quitDrain), so that the session slot
// the scheduler then gives back is free at the receiver too. Closing
// at the 221 let the next session (this node's or, in cluster mode,
// another's) reach a receiver still counting the old one: 421 "too many
// connections", and a concurrency cut (bench/cluster.sh).
func TestCloseWaitsForTheReceiverToHangUp(t *testing.T) {
	defer func(d time.Duration) { quitDrain = d }(quitDrain)
	quitDrain = time.Minute
	hold := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(hold) }) }
	f := newFakeMX(t, fakeCfg{afterQuit: hold})
	t.Cleanup(release) // runs before the fake's own cleanup waits for it
	ob, _ := testClient(t, f, TLSNone, nil)
	s := testDial(t, ob)
	if got := s.Send(context.Background(), testMsg("a@dest.test")); got[0].Code != 250 {
		t.Fatalf("send: %v", got)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for f.countVerb("QUIT") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("QUIT never sent")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("Close returned while the receiver still held the connection")
	case <-time.After(100 * time.Millisecond):
	}
	release()
	<-done
}
