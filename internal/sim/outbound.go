package sim

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"sluice/internal/fakemx"
	"sluice/relay/outbound"
	"sluice/reply"
	"sluice/scheduler"
)

// simOutbound is the scheduler's Outbound seam over a model receiver
// (fakemx.Model): it opens sessions whose replies are the model's
// decisions, taken at virtual times. Each SMTP command costs one round
// trip of latency; the model decides when the command arrives. The
// replies reach the scheduler as relay/outbound reports them: a refusal
// at greeting is Dial's failure, a 421 retires the session (RFC 5321
// §3.8), a refused MAIL refuses every recipient, a refused RCPT refuses
// its recipient only, and the reply to the final dot is every accepted
// recipient's.
type simOutbound struct {
	m   *fakemx.Model
	lat time.Duration
	ip  string // the sender's address, for the greylist's triplets

	starts atomic.Int64 // dials and transactions begun: the starvation check's "something started"
}

func (o *simOutbound) MXHosts(_ context.Context, domain string) ([]string, error) {
	return []string{"mx." + domain}, nil
}

func (o *simOutbound) Dial(ctx context.Context, domain string) (scheduler.Session, *reply.Reply) {
	o.starts.Add(1)
	// TCP connect and the greeting: one round trip; the receiver
	// decides when the connection arrives.
	if err := o.wait(ctx, o.lat); err != nil {
		return nil, &reply.Reply{Stage: reply.StageConnect, Err: err}
	}
	if r, ok := o.m.Connect(time.Now()); !ok {
		rep := toReply(reply.StageGreeting, r)
		return nil, &rep
	}
	s := &simSession{o: o, domain: domain, usable: true}
	// EHLO.
	if err := o.wait(ctx, o.lat); err != nil {
		s.Close()
		return nil, &reply.Reply{Stage: reply.StageEHLO, Err: err}
	}
	return s, nil
}

// wait lets d of virtual time pass, or fails when ctx ends first.
func (o *simOutbound) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// simSession is one connection to the model receiver.
type simSession struct {
	o      *simOutbound
	domain string
	usable bool
	closed bool
	sent   int
}

var errUnusable = errors.New("sim: session is no longer usable")

func (s *simSession) Relay() string { return "mx." + s.domain + "[192.0.2.25]:25" }
func (s *simSession) Usable() bool  { return s.usable && !s.closed }
func (s *simSession) DSN() bool     { return false } // the simulated receivers do not offer DSN
func (s *simSession) Sent() int     { return s.sent }
func (s *simSession) SameNextHop(_ context.Context, domain string) bool {
	return strings.EqualFold(domain, s.domain)
}

// Close ends the session; the receiver frees its slot (the QUIT costs
// the sender nothing: it does not wait for the reply).
func (s *simSession) Close() error {
	if !s.closed {
		s.closed = true
		s.o.m.Release()
	}
	return nil
}

// Send runs one transaction, as relay/outbound's Session.Send reports it.
func (s *simSession) Send(ctx context.Context, d *outbound.Delivery) []reply.Reply {
	s.o.starts.Add(1)
	out := make([]reply.Reply, len(d.Rcpts))
	fill := func(idx []int, r reply.Reply) []reply.Reply {
		for _, i := range idx {
			out[i] = r
		}
		return out
	}
	all := make([]int, len(d.Rcpts))
	for i := range all {
		all[i] = i
	}
	if !s.Usable() {
		return fill(all, reply.Reply{Stage: reply.StageMail, Err: errUnusable})
	}
	netFail := func(idx []int, stage reply.Stage, err error) []reply.Reply {
		s.usable = false
		return fill(idx, reply.Reply{Stage: stage, Err: err})
	}
	// refused ends the transaction on a refusal: a 421 closes the
	// session, anything else costs an RSET.
	refused := func(idx []int, stage reply.Stage, r fakemx.Reply) []reply.Reply {
		if r.Code == 421 {
			s.usable = false
		} else if err := s.o.wait(ctx, s.o.lat); err != nil {
			s.usable = false
		}
		return fill(idx, toReply(stage, r))
	}
	if err := s.o.wait(ctx, s.o.lat); err != nil {
		return netFail(all, reply.StageMail, err)
	}
	if r, ok := s.o.m.Mail(time.Now()); !ok {
		return refused(all, reply.StageMail, r)
	}
	// The recipients, one round trip each; the receiver decides each
	// when it arrives.
	var accepted []int
	for i, rcpt := range d.Rcpts {
		if err := s.o.wait(ctx, s.o.lat); err != nil {
			return netFail(all[i:], reply.StageRcpt, err)
		}
		r, no := s.o.m.Rcpt(time.Now(), s.o.ip, d.From, rcpt)
		switch {
		case no && r.Code == 421:
			fill(accepted, toReply(reply.StageRcpt, r))
			return refused(all[i:], reply.StageRcpt, r)
		case no:
			out[i] = toReply(reply.StageRcpt, r)
		default:
			accepted = append(accepted, i)
		}
	}
	if len(accepted) == 0 {
		if err := s.o.wait(ctx, s.o.lat); err != nil { // RSET
			s.usable = false
		}
		return out
	}
	// DATA, then the body and the final dot.
	if err := s.o.wait(ctx, 2*s.o.lat); err != nil {
		return netFail(accepted, reply.StageDataEnd, err)
	}
	rcpts := make([]string, len(accepted))
	for j, i := range accepted {
		rcpts[j] = d.Rcpts[i]
	}
	s.o.m.Deliver(time.Now(), rcpts, d.ID, false)
	s.sent++
	return fill(accepted, reply.Reply{Stage: reply.StageDataEnd, Code: 250, Enhanced: "2.0.0", Text: "Ok: queued"})
}

// toReply is a model reply as relay/outbound reports it: the enhanced
// code (RFC 3463) split off the first line, the lines joined by spaces.
func toReply(stage reply.Stage, r fakemx.Reply) reply.Reply {
	rep := reply.Reply{Stage: stage, Code: r.Code}
	var texts []string
	for i, l := range r.Lines {
		tok, rest, _ := strings.Cut(l, " ")
		if isEnhanced(r.Code, tok) && (i == 0 || tok == rep.Enhanced) {
			if i == 0 {
				rep.Enhanced = tok
			}
			l = rest
		}
		if l != "" {
			texts = append(texts, l)
		}
	}
	rep.Text = strings.Join(texts, " ")
	return rep
}

// isEnhanced recognises class.subject.detail whose class matches the
// basic code (RFC 3463 §2, RFC 2034 §3).
func isEnhanced(code int, tok string) bool {
	p := strings.Split(tok, ".")
	if len(p) != 3 || len(p[0]) != 1 || int(p[0][0]-'0') != code/100 {
		return false
	}
	for _, x := range p[1:] {
		if len(x) < 1 || len(x) > 3 || strings.Trim(x, "0123456789") != "" {
			return false
		}
	}
	return true
}
