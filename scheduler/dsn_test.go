package scheduler

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/dsn"
	"sluice/queue"
	"sluice/relay/outbound"
	"sluice/reply"
)

// dsnCapture is a scriptOutbound whose dest.test answers with reply and
// whose src.test (the senders' domain: where DSNs go) accepts; it keeps
// every DSN delivered and the DSN parameters of every delivery to
// dest.test.
type dsnCapture struct {
	mu         sync.Mutex
	dsns       []string
	deliveries []outbound.Delivery
	reply      reply.Reply
}

func (c *dsnCapture) outbound(hopDSN bool) *scriptOutbound {
	return &scriptOutbound{dsn: hopDSN, send: func(_ context.Context, _ *scriptSession, d *outbound.Delivery) []reply.Reply {
		ok := reply.Reply{Stage: reply.StageDataEnd, Code: 250, Enhanced: "2.0.0", Text: "ok"}
		c.mu.Lock()
		defer c.mu.Unlock()
		if d.From == "" {
			b, _ := io.ReadAll(d.Body)
			c.dsns = append(c.dsns, string(b))
			return sameReply(ok, len(d.Rcpts))
		}
		cp := *d
		cp.Body = nil
		c.deliveries = append(c.deliveries, cp)
		return sameReply(c.reply, len(d.Rcpts))
	}}
}

func (c *dsnCapture) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.dsns...)
}

func (r *scriptRig) enqueueDSN(env dsn.Envelope, rcpts []string, params []dsn.Rcpt) string {
	r.t.Helper()
	id, err := r.q.Enqueue(context.Background(), queue.NewMessage{From: "app@src.test", Rcpts: rcpts,
		Body: []byte("From: <app@src.test>\r\nSubject: t\r\n\r\nhello\r\n"), DSN: env, RcptDSN: params})
	if err != nil {
		r.t.Fatal(err)
	}
	r.sched.Kick()
	return id
}

// TestSuccessDSN (issue 13 item 5, RFC 3461 §4.1, §5.2.2): NOTIFY=SUCCESS
// gets a "relayed" DSN when the next hop does not offer DSN; when it
// does, sluice sends none and passes NOTIFY, ORCPT, RET and ENVID on.
func TestSuccessDSN(t *testing.T) {
	t.Parallel()
	for _, hopDSN := range []bool{false, true} {
		c := &dsnCapture{reply: reply.Reply{Stage: reply.StageDataEnd, Code: 250, Enhanced: "2.0.0", Text: "ok"}}
		r := newScriptRig(t, c.outbound(hopDSN), nil)
		params := []dsn.Rcpt{{Notify: dsn.NotifySuccess | dsn.NotifyFailure, ORcpt: "rfc822;orig@dest.test"}, {}}
		id := r.enqueueDSN(dsn.Envelope{Ret: dsn.RetHdrs, EnvID: "env-7"}, []string{"a@dest.test", "b@dest.test"}, params)
		eventually(t, "the delivery", func() bool {
			m := r.get(id)
			return m.Recipients[0].State == queue.StateSent && m.Recipients[1].State == queue.StateSent
		})
		c.mu.Lock()
		d := c.deliveries[0]
		c.mu.Unlock()
		if d.Env != (dsn.Envelope{Ret: dsn.RetHdrs, EnvID: "env-7"}) || len(d.RcptDSN) != 2 || d.RcptDSN[0] != params[0] || d.RcptDSN[1] != (dsn.Rcpt{}) {
			t.Errorf("hop DSN %v: the delivery carried %+v %+v", hopDSN, d.Env, d.RcptDSN)
		}
		if !hopDSN {
			eventually(t, "the success DSN", func() bool { return len(c.all()) == 1 })
			got := c.all()[0]
			for _, want := range []string{"Subject: Successful Mail Delivery Report", "Action: relayed", "Status: 2.0.0",
				"Original-Recipient: rfc822;orig@dest.test", "Final-Recipient: rfc822; a@dest.test", "Original-Envelope-Id: env-7"} {
				if !strings.Contains(got, want) {
					t.Errorf("the success DSN lacks %q:\n%s", want, got)
				}
			}
			if strings.Contains(got, "b@dest.test") {
				t.Errorf("b@dest.test did not ask for SUCCESS:\n%s", got)
			}
			continue
		}
		// The DSN is queued before the outcome is recorded: once sent,
		// none is there to come.
		if ms, _ := r.q.List(queue.Filter{}); len(ms) != 1 || len(c.all()) != 0 {
			t.Errorf("a success DSN was sent although the next hop offers DSN: %d messages, %q", len(ms), c.all())
		}
	}
}

// TestNotifyHonouredOnFailure: a permanent failure is reported unless
// NOTIFY excludes FAILURE (NEVER, or SUCCESS alone); RET=HDRS returns the
// header section only.
func TestNotifyHonouredOnFailure(t *testing.T) {
	t.Parallel()
	c := &dsnCapture{reply: reply.Reply{Stage: reply.StageRcpt, Code: 550, Enhanced: "5.1.1", Text: "no such user"}}
	r := newScriptRig(t, c.outbound(true), nil)
	id := r.enqueueDSN(dsn.Envelope{Ret: dsn.RetHdrs}, []string{"never@dest.test", "success@dest.test", "default@dest.test", "failure@dest.test"},
		[]dsn.Rcpt{{Notify: dsn.NotifyNever}, {Notify: dsn.NotifySuccess}, {}, {Notify: dsn.NotifyFailure, ORcpt: "rfc822;f@dest.test"}})
	eventually(t, "the bounce", func() bool {
		for _, rc := range r.get(id).Recipients {
			if rc.State != queue.StateBounced {
				return false
			}
		}
		return true
	})
	// The DSN is a message of its own, queued with the outcome and
	// delivered after it: wait for its delivery, not only the bounce.
	eventually(t, "the DSN's delivery", func() bool { return len(c.all()) >= 1 })
	dsns := c.all()
	if len(dsns) != 1 {
		t.Fatalf("%d DSNs, want 1", len(dsns))
	}
	got := dsns[0]
	for _, want := range []string{"Final-Recipient: rfc822; default@dest.test", "Final-Recipient: rfc822; failure@dest.test",
		"Original-Recipient: rfc822;f@dest.test", "Action: failed", "text/rfc822-headers"} {
		if !strings.Contains(got, want) {
			t.Errorf("the DSN lacks %q:\n%s", want, got)
		}
	}
	for _, no := range []string{"never@dest.test", "success@dest.test", "hello"} {
		if strings.Contains(got, no) {
			t.Errorf("the DSN names %q:\n%s", no, got)
		}
	}
}

// TestDelayNotice (delivery.delay_warning, as Postfix's
// delay_warning_time): one notice with Action: delayed per recipient, at
// the first attempt after the delay, never again; none for a NOTIFY
// without DELAY. Virtual time.
func TestDelayNotice(t *testing.T) {
	t.Parallel()
	c := &dsnCapture{reply: reply.Reply{Stage: reply.StageRcpt, Code: 451, Enhanced: "4.2.1", Text: "try later"}}
	r := newScriptRig(t, c.outbound(false), func(o *Options) { o.DelayWarning = 10 * time.Minute })
	t0 := r.clk.Now()
	id := r.enqueueDSN(dsn.Envelope{}, []string{"a@dest.test", "nodelay@dest.test"}, []dsn.Rcpt{{}, {Notify: dsn.NotifyFailure}})
	attempt := func(n int, at time.Time) {
		t.Helper()
		r.clk.Set(at)
		r.sched.Kick()
		eventually(t, "attempt "+string(rune('0'+n)), func() bool {
			m := r.get(id)
			return m.Recipients[0].Attempts >= n && m.Recipients[1].Attempts >= n && m.Recipients[0].State == queue.StateQueued
		})
	}
	attempt(1, t0)
	if n := len(c.all()); n != 0 {
		t.Fatalf("%d notices before the delay", n)
	}
	attempt(2, t0.Add(11*time.Minute))
	eventually(t, "the delay notice", func() bool { return len(c.all()) == 1 })
	got := c.all()[0]
	for _, want := range []string{"Subject: Delayed Mail (still being retried)", "Action: delayed", "Status: 4.2.1", "Final-Recipient: rfc822; a@dest.test"} {
		if !strings.Contains(got, want) {
			t.Errorf("the notice lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "nodelay@dest.test") {
		t.Errorf("NOTIFY=FAILURE got a delay notice:\n%s", got)
	}
	if !r.get(id).Recipients[0].DelayWarned || r.get(id).Recipients[1].DelayWarned {
		t.Errorf("DelayWarned: %+v", r.get(id).Recipients)
	}
	attempt(3, t0.Add(40*time.Minute))
	if n := len(c.all()); n != 1 {
		t.Errorf("%d notices after a later attempt, want 1 (once per recipient)", n)
	}
}

// TestDelayWarningZeroSendsNone: delivery.delay_warning = 0 sends no
// delay notice, however long the mail waits.
func TestDelayWarningZeroSendsNone(t *testing.T) {
	t.Parallel()
	c := &dsnCapture{reply: reply.Reply{Stage: reply.StageRcpt, Code: 451, Enhanced: "4.2.1", Text: "try later"}}
	r := newScriptRig(t, c.outbound(false), func(o *Options) { o.DelayWarning = 0 })
	t0 := r.clk.Now()
	id := r.enqueueDSN(dsn.Envelope{}, []string{"a@dest.test"}, nil)
	for n, at := range []time.Time{t0, t0.Add(50 * time.Minute)} {
		r.clk.Set(at)
		r.sched.Kick()
		eventually(t, "an attempt", func() bool { return r.state(id).Attempts >= n+1 && r.state(id).State == queue.StateQueued })
	}
	if n := len(c.all()); n != 0 || r.state(id).DelayWarned {
		t.Errorf("%d notices with delay_warning 0", n)
	}
}
