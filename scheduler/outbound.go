package scheduler

import (
	"context"

	"sluice/relay/outbound"
	"sluice/reply"
)

// RelayOutbound adapts *outbound.Client to the scheduler's Outbound seam.
func RelayOutbound(o *outbound.Client) Outbound { return relayOutbound{o} }

type relayOutbound struct{ o *outbound.Client }

func (r relayOutbound) MXHosts(ctx context.Context, domain string) ([]string, error) {
	return r.o.MXHosts(ctx, domain)
}

func (r relayOutbound) Dial(ctx context.Context, domain string) (Session, *reply.Reply) {
	s, fail := r.o.Dial(ctx, domain)
	if fail != nil {
		return nil, fail
	}
	return s, nil
}
