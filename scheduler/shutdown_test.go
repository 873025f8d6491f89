package scheduler

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"sluice/policy"
	"sluice/queue"
	"sluice/relay/outbound"
	"sluice/reply"
)

// Our own shutdown cutting a delivery is neither a reply nor a failure of
// the receiver (issue 9 item 3): the recipient is requeued due now, with
// no attempt counted, no History entry, no policy observation and so no
// pause; the mail log says it was requeued at shutdown. Two ways to be
// cut: in the middle of the transaction, and while dialling.
func TestShutdownCutRequeuesWithoutPenalty(t *testing.T) {
	for _, where := range []string{"send", "dial"} {
		t.Run(where, func(t *testing.T) {
			t.Parallel()
			entered := make(chan struct{}, 1)
			// What relay reports for a cut session: the context's error
			// wrapped around the I/O error it caused.
			cut := func(ctx context.Context, stage reply.Stage) reply.Reply {
				entered <- struct{}{}
				<-ctx.Done()
				return reply.Reply{Stage: stage, Err: fmt.Errorf("%w: %w", ctx.Err(), io.ErrUnexpectedEOF)}
			}
			out := &scriptOutbound{}
			if where == "send" {
				out.send = func(ctx context.Context, _ *scriptSession, d *outbound.Delivery) []reply.Reply {
					return sameReply(cut(ctx, reply.StageDataEnd), len(d.Rcpts))
				}
			} else {
				out.dial = func(ctx context.Context, _ string) *reply.Reply {
					r := cut(ctx, reply.StageConnect)
					return &r
				}
			}
			r := newScriptRig(t, out, nil)
			id := r.enqueue("app@src.test", "a@dest.test", "b@dest.test")
			select {
			case <-entered:
			case <-time.After(10 * time.Second):
				t.Fatal("delivery never started")
			}
			r.stop()

			m := r.get(id)
			for _, rc := range m.Recipients {
				if rc.State != queue.StateQueued || rc.Attempts != 0 || len(rc.History) != 0 || rc.LastClass != "" {
					t.Errorf("%s after the cut: state %s, attempts %d, history %+v, class %q; want queued, untouched",
						rc.Addr, rc.State, rc.Attempts, rc.History, rc.LastClass)
				}
				if rc.NextAttempt.After(time.Now().Add(time.Second)) {
					t.Errorf("%s due at %v: a shutdown must not delay it", rc.Addr, rc.NextAttempt)
				}
			}
			if st, ok := r.pol.State("dest.test"); ok && (st.State != policy.StateOpen || st.LastReply != "") {
				t.Errorf("destination after our own shutdown: %+v", st)
			}
			logs := r.logs.String()
			if !strings.Contains(logs, "requeued at shutdown") || strings.Contains(logs, "status=deferred") {
				t.Errorf("mail log:\n%s", logs)
			}
		})
	}
}
