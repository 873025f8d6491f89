package outbound

import (
	"context"
	"net"
)

// Resolver is the DNS seam of the relay. *net.Resolver satisfies it; tests
// inject fakes that answer names under .test and .invalid.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Dialer is the network seam of outbound delivery. *net.Dialer satisfies it.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}
