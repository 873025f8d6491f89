package main

import (
	"context"
	"sync/atomic"

	"sluice/relay/outbound"
	"sluice/reply"
	"sluice/scheduler"
)

// outboundSwitch is the scheduler's Outbound across reloads: every
// lookup and every dial uses the client in force. A session dialled by
// an earlier client finishes the message it is sending, then reports
// itself unusable, so that the scheduler ends it and the next message
// goes by the new routes, smarthost and timeouts (issue 12: sessions in
// flight finish under the configuration they started with).
type outboundSwitch struct {
	cur atomic.Pointer[outboundGen]
}

// outboundGen is one client; sessions remember the one that dialled them.
type outboundGen struct{ o scheduler.Outbound }

func newOutboundSwitch(c *outbound.Client) *outboundSwitch {
	s := &outboundSwitch{}
	s.set(c)
	return s
}

// set puts c in force for every dial from now on.
func (s *outboundSwitch) set(c *outbound.Client) {
	s.cur.Store(&outboundGen{o: scheduler.RelayOutbound(c)})
}

func (s *outboundSwitch) MXHosts(ctx context.Context, domain string) ([]string, error) {
	return s.cur.Load().o.MXHosts(ctx, domain)
}

func (s *outboundSwitch) Dial(ctx context.Context, domain string) (scheduler.Session, *reply.Reply) {
	g := s.cur.Load()
	sess, fail := g.o.Dial(ctx, domain)
	if fail != nil {
		return nil, fail
	}
	return &switchedSession{Session: sess, sw: s, gen: g}, nil
}

// switchedSession is a session that knows the client that dialled it.
type switchedSession struct {
	scheduler.Session
	sw  *outboundSwitch
	gen *outboundGen
}

func (s *switchedSession) current() bool { return s.sw.cur.Load() == s.gen }

// Usable is false once a reload replaced the client: the session ends
// after its message (it still QUITs politely: Close asks the connection).
func (s *switchedSession) Usable() bool { return s.Session.Usable() && s.current() }

func (s *switchedSession) SameNextHop(ctx context.Context, domain string) bool {
	return s.current() && s.Session.SameNextHop(ctx, domain)
}
