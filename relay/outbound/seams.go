// Package relay owns the SMTP wire: the inbound server that applications
// submit to (access control, AUTH, inbound limits, strict DATA) and the
// outbound client that delivers to the next hop (routes, smarthost, MX,
// STARTTLS, connection reuse). It never decides when to retry: it reports
// every reply to its caller, which asks policy.
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
