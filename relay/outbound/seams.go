package outbound

import (
	"context"
	"net"

	"sluice/resolver"
)

// Resolver is the DNS seam of outbound delivery. *resolver.Resolver (the
// daemon's, shared with auth) satisfies it; unit tests run one over an
// in-process zone (internal/dnstest.InProcess) or a fake.
type Resolver interface {
	MX(ctx context.Context, domain string) (resolver.MXAnswer, error)
	Addrs(ctx context.Context, host string) (resolver.AddrAnswer, error)
}

// Dialer is the network seam of outbound delivery. *net.Dialer satisfies it.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}
