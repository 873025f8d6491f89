package config

import "net/netip"

// OutboundAddrs are delivery.outbound_ips parsed (validated at load).
func (d Delivery) OutboundAddrs() []netip.Addr {
	var out []netip.Addr
	for _, s := range d.OutboundIPs {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// SMTPAddrs are the addresses of our own SMTP listeners, so that a next
// hop that points back at us is recognised as a loop (RFC 5321 §5.1). A
// listener on the unspecified address is reachable on the loopback
// addresses at least.
func (l Listen) SMTPAddrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range []string{l.SMTP, l.Submission, l.Submissions} {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			continue
		}
		if ap.Addr().IsUnspecified() {
			out = append(out, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port()), netip.AddrPortFrom(netip.IPv6Loopback(), ap.Port()))
			continue
		}
		out = append(out, ap)
	}
	return out
}
