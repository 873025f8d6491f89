package scheduler

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"sluice/dsn"
	"sluice/queue"
	"sluice/relay/outbound"
	"sluice/reply"
)

// TestREQUIRETLSCarriedAndBounced (RFC 8689): the requirement stored with
// a message reaches the delivery; the next hop's 5.7.30 bounces it (no
// retry, no auth alarm); the DSN returns the header section only,
// whatever RET asked, and goes back with REQUIRETLS itself (§5).
func TestREQUIRETLSCarriedAndBounced(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var deliveries, dsns []outbound.Delivery
	var dsnBodies []string
	refusal := reply.Reply{Stage: reply.StageMail, Code: 550, Enhanced: "5.7.30", Text: "REQUIRETLS support required: next hop mx.dest.test does not offer it"}
	out := &scriptOutbound{send: func(_ context.Context, _ *scriptSession, d *outbound.Delivery) []reply.Reply {
		mu.Lock()
		defer mu.Unlock()
		cp := *d
		cp.Body = nil
		if d.From == "" {
			b, _ := io.ReadAll(d.Body)
			dsnBodies = append(dsnBodies, string(b))
			dsns = append(dsns, cp)
			return sameReply(reply.Reply{Stage: reply.StageDataEnd, Code: 250, Enhanced: "2.0.0", Text: "ok"}, len(d.Rcpts))
		}
		deliveries = append(deliveries, cp)
		return sameReply(refusal, len(d.Rcpts))
	}}
	r := newScriptRig(t, out, nil)
	id, err := r.q.Enqueue(context.Background(), queue.NewMessage{From: "app@src.test", Rcpts: []string{"a@dest.test"},
		Body: []byte("From: <app@src.test>\r\nSubject: t\r\n\r\nsecret body\r\n"), DSN: dsn.Envelope{Ret: dsn.RetFull}, RequireTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	r.sched.Kick()
	eventually(t, "the bounce", func() bool { return r.get(id).Recipients[0].State == queue.StateBounced })
	eventually(t, "the DSN's delivery", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(dsns) == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if len(deliveries) != 1 || !deliveries[0].RequireTLS {
		t.Fatalf("deliveries %+v: want one, with RequireTLS", deliveries)
	}
	if !dsns[0].RequireTLS {
		t.Error("the DSN of a REQUIRETLS message went without REQUIRETLS")
	}
	got := dsnBodies[0]
	for _, want := range []string{"Status: 5.7.30", "text/rfc822-headers", "Subject: t"} {
		if !strings.Contains(got, want) {
			t.Errorf("the DSN lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "secret body") {
		t.Errorf("the DSN returns the body of a REQUIRETLS message:\n%s", got)
	}
}
