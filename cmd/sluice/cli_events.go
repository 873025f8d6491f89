package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"sluice/admin"
	"sluice/events"
	"sluice/queue"
)

// runEvents: `sluice events [status]`, `sluice events tail [--after ID]`,
// `sluice events replay --since T [--sink URL|FILE]`.
func runEvents(args []string, stdout, stderr io.Writer) error {
	var cf cliFlags
	fs := newFlagSet("events", "events [status] | events tail [--after ID] | events replay --since TIME|DURATION [--sink URL|FILE]\n\n"+
		"status: the event outbox (size, cap, drops) and each sink (pending, sent, failures).\n"+
		"tail: print the delivery events as they happen, one JSON object per line (after --after ID,\n"+
		"or from now); needs a sink configured, since events are stored only then.\n"+
		"replay: send every stored event from --since on (an RFC 3339 time, or a duration back from\n"+
		"now such as 2h or 7d) to the sinks again, or to --sink only; the events keep their IDs.", stderr)
	cf.register(fs)
	after := fs.String("after", "", "tail: start after this event ID")
	since := fs.String("since", "", "replay: from this time (RFC 3339) or this long ago (2h, 7d)")
	sink := fs.String("sink", "", "replay: only this webhook URL or file")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseErr(err)
	}
	sub := "status"
	if len(pos) > 0 {
		sub = pos[0]
	}
	if len(pos) > 1 {
		return fmt.Errorf("%w: sluice events [status|tail|replay]", errUsage)
	}
	c, ctx, cancel, err := cf.connect()
	if err != nil {
		return err
	}
	defer cancel()
	switch sub {
	case "status":
		st, err := c.Events(ctx)
		if err != nil {
			return explainErr(c, err)
		}
		if cf.json {
			return printJSON(stdout, st)
		}
		renderEvents(stdout, st)
	case "tail":
		// No deadline: until interrupted.
		tctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		enc := json.NewEncoder(stdout)
		err := c.Tail(tctx, *after, func(e queue.Event) error { return enc.Encode(&e) })
		if err != nil && tctx.Err() == nil {
			return explainErr(c, err)
		}
	case "replay":
		if *since == "" {
			return fmt.Errorf("%w: sluice events replay --since TIME|DURATION [--sink URL|FILE]", errUsage)
		}
		t, err := admin.ParseSince(*since, time.Now())
		if err != nil {
			return fmt.Errorf("%w: --since: %v", errUsage, err)
		}
		res, err := c.Replay(ctx, admin.ReplayRequest{Since: t, Sink: *sink})
		if err != nil {
			return explainErr(c, err)
		}
		if cf.json {
			return printJSON(stdout, res)
		}
		if res.Events == 0 {
			fmt.Fprintf(stdout, "no stored event since %s\n", t.UTC().Format(timeFmt))
			return nil
		}
		fmt.Fprintf(stdout, "replaying %d events from %s to %d sink(s)\n", res.Events, esc(res.From), len(res.Sinks))
	default:
		return fmt.Errorf("%w: sluice events [status|tail|replay], not %q", errUsage, sub)
	}
	return nil
}

func renderEvents(w io.Writer, st events.Status) {
	if !st.On {
		fmt.Fprintln(w, "events: off (no [[events.webhook]] and no events.file: events are not stored)")
	}
	tw := table(w)
	fmt.Fprintf(tw, "outbox:\t%d events, %d of %d bytes\n", st.Events, st.Bytes, st.MaxBytes)
	if st.LastID != "" {
		fmt.Fprintf(tw, "last event:\t%s\n", esc(st.LastID))
	}
	fmt.Fprintf(tw, "dropped:\t%d undelivered events over the queue file's life\n", st.Dropped)
	tw.Flush()
	if st.Alarm != "" {
		fmt.Fprintf(w, "\nALARM: %s\n", esc(st.Alarm))
	}
	if len(st.Sinks) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = table(w)
	fmt.Fprintln(tw, "SINK\tKIND\tPENDING\tOLDEST PENDING\tSENT\tFAILURES\tLAST ERROR")
	for _, s := range st.Sinks {
		oldest, lastErr := "-", "-"
		if s.Oldest != nil {
			oldest = s.Oldest.Format(timeFmt)
		}
		if s.LastError != "" {
			lastErr = s.LastError
			if s.LastErrAt != nil {
				lastErr += " at " + s.LastErrAt.Format(timeFmt)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%s\n", esc(s.Name), s.Kind, s.Pending, oldest, s.Sent, s.Failures, esc(lastErr))
	}
	tw.Flush()
}
