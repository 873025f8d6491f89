package admin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/time/rate"

	"sluice/config"
	"sluice/dsn"
	"sluice/policy"
	"sluice/queue"
)

// resolveDest accepts a destination name or a recipient domain grouped
// into one (gmail.com for the "gmail" provider destination).
func (s *Server) resolveDest(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	if _, ok := s.o.Policy.State(name); ok {
		return name
	}
	if d, ok := s.o.Telemetry.History.DestinationOf(name); ok {
		return d
	}
	return s.o.Policy.Destination(name, nil)
}

func paused(st policy.DestinationState) bool {
	return st.State == policy.StatePaused || st.State == policy.StateSuspended
}

func (s *Server) kick() {
	if s.o.Kick != nil {
		s.o.Kick()
	}
}

// progressFunc receives the running totals of a bulk operation after
// each of its pages (see queue.BulkPage).
type progressFunc func(Result)

// flush makes queued mail due now. Mail for a paused destination is left
// alone unless forced: the receiver asked us to wait. Forced, the pause
// ends (policy.Resume) and the destination reopens half-open, with one
// probe session first. It runs in pages (queue.Flush), reporting
// progress, so that it never holds the writer for long.
func (s *Server) flush(ctx context.Context, req FlushRequest, progress progressFunc) (Result, error) {
	defer s.kick()
	var res Result
	report := func(moved int) {
		if progress != nil {
			progress(Result{Changed: res.Changed + moved})
		}
	}
	if req.Domain != "" {
		dest := s.resolveDest(req.Domain)
		if st, ok := s.o.Policy.State(dest); ok && paused(st) && !req.Force {
			return Result{}, fmt.Errorf("%w: destination %s is %s until %s; use --force to flush anyway", errConflict, dest, st.State, st.PausedUntil.UTC().Format("2006-01-02 15:04:05Z"))
		}
		var orphans int
		if req.Force {
			s.o.Policy.Resume(dest)
			var err error
			if orphans, err = s.returnLeases(req.Domain); err != nil {
				return Result{}, err
			}
		}
		res.Changed = orphans
		n, err := s.o.Queue.Flush(ctx, req.Domain, report)
		s.log.Info("admin: flush", "domain", req.Domain, "force", req.Force, "recipients", n, "leases_returned", orphans)
		return Result{Changed: n + orphans}, err
	}
	if req.Force {
		for _, st := range s.o.Policy.Snapshot() {
			s.o.Policy.Resume(st.Name)
		}
		orphans, err := s.returnLeases("")
		if err != nil {
			return Result{}, err
		}
		res.Changed = orphans
		n, err := s.o.Queue.Flush(ctx, "", report)
		s.log.Info("admin: flush", "force", true, "recipients", n, "leases_returned", orphans)
		return Result{Changed: n + orphans}, err
	}
	// The domains with queued mail come from the counters, not a scan.
	counts, err := s.o.Queue.DomainCounts(s.o.Now(), nil)
	if err != nil {
		return Result{}, err
	}
	for _, c := range counts {
		if c.States[queue.StateQueued] == 0 {
			continue
		}
		if st, ok := s.o.Policy.State(s.destOfDomain(c.Domain)); ok && paused(st) {
			res.Skipped = append(res.Skipped, c.Domain)
			continue
		}
		n, err := s.o.Queue.Flush(ctx, c.Domain, report)
		res.Changed += n
		if err != nil {
			return res, err
		}
	}
	sort.Strings(res.Skipped)
	s.log.Info("admin: flush", "recipients", res.Changed, "skipped_paused", len(res.Skipped))
	return res, nil
}

// returnLeases hands back to the queue, due now, the leases no delivery
// holds (an outcome or a requeue whose write failed): forced, a flush
// does not wait for them to expire.
func (s *Server) returnLeases(domain string) (int, error) {
	if s.o.Held == nil {
		return 0, nil
	}
	return s.o.Queue.ReturnLeases(s.o.Now(), domain, s.o.Held)
}

// act runs hold, release, delete or bounce on a selection, a page of at
// most queue.BulkPage messages per commit (bounce: bounceChunk), so that
// new mail is accepted in between however large the selection, and
// reports progress after each page. A domain selection covers the
// messages with an open recipient at the domain when the action began,
// found through the queue's per-domain index.
func (s *Server) act(ctx context.Context, action string, sel Selection, progress progressFunc) (Result, error) {
	var change func(ids []string) (int, error)
	page := queue.BulkPage
	switch action {
	case "hold":
		change = s.o.Queue.Hold
	case "release":
		change = s.o.Queue.Release
		defer s.kick()
	case "delete":
		change = s.o.Queue.Delete
	case "bounce":
		change, page = s.bounce, bounceChunk
		defer s.kick()
	default:
		return Result{}, fmt.Errorf("%w: unknown action %q (hold, release, delete, bounce)", errBadRequest, action)
	}
	if sel.Domain != "" && len(sel.IDs) > 0 {
		return Result{}, fmt.Errorf("%w: give IDs or a domain, not both", errBadRequest)
	}
	if sel.Domain == "" && len(sel.IDs) == 0 {
		return Result{}, fmt.Errorf("%w: no message IDs and no domain", errBadRequest)
	}
	var res Result
	selected := 0
	step := func(ids []string) error {
		selected += len(ids)
		n, err := change(ids)
		res.Changed += n
		if progress != nil {
			progress(res)
		}
		return err
	}
	var err error
	if sel.Domain != "" {
		err = s.o.Queue.DomainPages(ctx, sel.Domain, page, step)
	} else {
		for ids := sel.IDs; len(ids) > 0 && err == nil; {
			chunk := ids[:min(len(ids), page)]
			ids = ids[len(chunk):]
			if err = ctx.Err(); err == nil {
				err = step(chunk)
			}
		}
	}
	s.log.Info("admin: "+action, "messages", res.Changed, "selected", selected, "domain", sel.Domain)
	return res, err
}

const operatorBounce = "bounced by the relay operator"

// bounceQueue is what the operator bounce needs from the queue.
type bounceQueue interface {
	OpenBody(id string) (*queue.Body, error)
	Bounce(ids []string, att queue.Attempt, dsn queue.BounceFunc) (int, error)
}

// bounceChunk bounds the originals read ahead of one Bounce call.
const bounceChunk = 100

// bounce fails every queued or held recipient of ids and sends the
// sender one DSN per message (RFC 3464). The queue checks the states,
// records the bounces and queues the DSN in one transaction, so a
// recipient delivered (or leased) after the operator looked is left
// alone and named in no DSN. What the DSN returns of the original (all of
// a small message, the header section of a large one) is read ahead; a
// transient read failure fails the request before anything is recorded,
// and the operator can retry.
func (s *Server) bounce(ids []string) (int, error) {
	now := s.o.Now()
	changed := 0
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), bounceChunk)]
		ids = ids[len(chunk):]
		headers := make(map[string][]byte, len(chunk))
		for _, id := range chunk {
			h, err := readOriginal(s.bq, id)
			switch {
			case errors.Is(err, queue.ErrNotFound):
				// Unknown or finished (Bounce skips it), or a body truly
				// gone: the DSN then says so.
			case err != nil:
				return changed, fmt.Errorf("read the original of %s: %w", id, err)
			default:
				headers[id] = h
			}
		}
		att := queue.Attempt{At: now, Reply: operatorBounce, Class: "operator", Status: "bounced"}
		n, err := s.bq.Bounce(chunk, att, func(m *queue.Message, failed []int) (*queue.NewMessage, error) {
			if m.From == "" {
				return nil, nil // RFC 3461 §6.2: never a DSN to the null sender
			}
			rcpts := make([]dsn.Recipient, 0, len(failed))
			for _, i := range failed {
				rc := m.Recipients[i]
				if !rc.DSN.Notify.Failure() {
					continue // NOTIFY=NEVER, or without FAILURE (RFC 3461 §4.1)
				}
				rcpts = append(rcpts, dsn.Recipient{Addr: rc.Addr, ORcpt: rc.DSN.ORcpt, Action: "failed", Status: "5.0.0", Diagnostic: operatorBounce, LastAttempt: now})
			}
			if len(rcpts) == 0 {
				return nil, nil
			}
			r := dsn.Report{ReportingMTA: s.o.Hostname, Sender: m.From, QueueID: m.ID, Arrival: m.Received,
				EnvID: m.DSN.EnvID, Ret: m.DSN.Ret, Recipients: rcpts, Now: now}
			if h, ok := headers[m.ID]; ok {
				r.Original, r.OriginalSize = h, m.Size
			} else {
				r.OriginalUnavailable = "its body is missing from the queue"
			}
			msg, err := dsn.Build(r)
			if err != nil {
				return nil, fmt.Errorf("dsn for %s: %w", m.ID, err)
			}
			// RFC 8689 §5: the report on a REQUIRETLS message goes back
			// with REQUIRETLS too (it returns the headers only already).
			return &queue.NewMessage{Rcpts: []string{m.From}, Body: msg, RequireTLS: m.RequireTLS}, nil
		})
		changed += n
		if err != nil {
			return changed, err
		}
	}
	return changed, nil
}

// readOriginal reads what a DSN returns of message id: all of a small
// message, the header section of a large one (dsn.ReadOriginal), never a
// large body.
func readOriginal(q bounceQueue, id string) ([]byte, error) {
	b, err := q.OpenBody(id)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return dsn.ReadOriginal(b, b.Size())
}

// setLimits applies operator maxima; a field left out keeps the current
// maximum. The policy persists them in the queue file, so they survive a
// restart, and clamps the learned levels at once.
func (s *Server) setLimits(name string, req LimitsRequest) (Destination, error) {
	dest := s.resolveDest(name)
	cur, known := s.o.Policy.State(dest)
	var l policy.Limits
	switch {
	case req.MaxConcurrency != nil:
		l.MaxConcurrency = *req.MaxConcurrency
	case known:
		l.MaxConcurrency = cur.MaxConcurrency
	default:
		return Destination{}, fmt.Errorf("%w: %s is not known yet; give --max-concurrency", errBadRequest, dest)
	}
	switch {
	case req.Rate != nil:
		r, err := config.ParseRate(*req.Rate)
		if err != nil {
			return Destination{}, fmt.Errorf("%w: %v", errBadRequest, err)
		}
		l.Rate = r.Limit
	case known && cur.MaxRate != rate.Inf:
		l.Rate = cur.MaxRate
	}
	set := s.o.Policy.SetLimits
	if s.o.Cluster != nil {
		set = s.o.Cluster.SetLimits // on every node
	}
	if err := set(dest, l); err != nil {
		return Destination{}, err
	}
	s.log.Info("admin: limits set", "destination", dest, "max_concurrency", l.MaxConcurrency, "rate", float64(l.Rate))
	st, _ := s.o.Policy.State(dest)
	s.kick()
	return s.destinationOf(st), nil
}
