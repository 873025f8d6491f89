package outbound

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"sluice/dane"
	"sluice/reply"
)

// tlsEntry remembers what a server did with STARTTLS, so that a failed
// handshake costs one extra connection per TLSCacheTTL, not one per message:
// receivers with a small session cap count every dial.
type tlsEntry struct {
	offered bool
	failed  bool // handshake failed: opportunistic mode goes plaintext
	expires time.Time
}

var errCredsInClear = errors.New("relay: refusing to send smarthost credentials without TLS")

// Dial opens a session to the first next hop that answers. Connection
// failures and 4xx greetings move on to the next address (RFC 5321 §5.1);
// anything else is returned as the Reply that explains it.
func (o *Client) Dial(ctx context.Context, domain string) (*Session, *reply.Reply) {
	domain = normDomain(domain)
	hops, err := o.NextHops(ctx, domain)
	if err != nil {
		var he *HopError
		if errors.As(err, &he) {
			r := he.Reply
			return nil, &r
		}
		r := netReply(reply.StageConnect, err)
		return nil, &r
	}
	// RFC 5321 §5.1: an MX list that leads back to us is a configuration
	// error; delivering would loop until the hop count stops it.
	for _, h := range hops {
		if o.isLoop(h.Addr) {
			return nil, &reply.Reply{Stage: reply.StageConnect, Code: 554, Enhanced: "5.4.6",
				Text: fmt.Sprintf("mail for %s loops back to myself", domain)}
		}
	}
	var last *reply.Reply
	for _, h := range hops {
		if err := ctx.Err(); err != nil {
			r := netReply(reply.StageConnect, err)
			return nil, &r
		}
		s, rep := o.dialHop(ctx, domain, h)
		if s != nil {
			s.domain = domain
			s.nextHop, _ = o.nextHopKey(ctx, domain)
			return s, nil
		}
		last = rep
		if !tryNext(rep) {
			return nil, rep
		}
		o.log.Info("relay: next hop failed, trying the next one", "domain", domain,
			"host", h.Host, "addr", h.Addr.String(), "reply", rep.String())
	}
	return nil, last
}

func tryNext(r *reply.Reply) bool {
	if errors.Is(r.Err, reply.ErrTLSPolicy) {
		// This host fails the policy; another MX may meet it (RFC
		// 8461 §4.1, RFC 7672 §2.2).
		return true
	}
	switch r.Stage {
	case reply.StageConnect:
		return true
	case reply.StageGreeting:
		return r.Err != nil || r.Code/100 == 4
	}
	return false
}

// dialHop opens one session under the hop's TLS requirement (see
// requirement). Only under may, or under a policy in testing mode, does
// a failed handshake fall back to plaintext, on a fresh connection (RFC
// 7435 §4 prefers cleartext delivery to none; RFC 8461 §5 delivers
// anyway in testing mode); every other TLS failure is a tls-policy
// failure (reply.ErrTLSPolicy): never a silent downgrade.
func (o *Client) dialHop(ctx context.Context, domain string, h Hop) (*Session, *reply.Reply) {
	var req TLSRequirement
	var err error
	if unreported(ctx) {
		req, err = o.reportRequirement(ctx, domain, h)
	} else {
		req, err = o.requirement(ctx, domain, h)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			r := netReply(reply.StageConnect, err)
			return nil, &r
		}
		o.log.Warn("relay: TLS policy: next hop not used", "domain", domain, "host", h.Host, "addr", h.Addr.String(), "err", err)
		failed, result := TLSRequirement{PolicyDomain: domain, PolicyType: "no-policy-found", unreported: unreported(ctx)}, ResultValidationFailure
		var pf *PolicyFailure
		switch {
		case errors.As(err, &pf):
			failed.PolicyType, failed.PolicyStrings, failed.MXHosts, result = pf.Type, pf.PolicyStrings, pf.MXHosts, pf.Result
		case errors.Is(err, dane.ErrLookup):
			failed.PolicyType, result = "tlsa", ResultDNSSECInvalid // RFC 8460 §4.3.2
		}
		o.record(failed, h, nil, result)
		return nil, policyError(reply.StageConnect, h, err)
	}
	req.unreported = unreported(ctx)
	fallback := req.Mode == TLSMay || req.ReportOnly
	tryTLS := req.Mode != TLSNone
	if fallback && o.tlsFailedRecently(h.Addr) {
		tryTLS = false
		if req.ReportOnly {
			o.record(req, h, nil, ResultValidationFailure)
		}
	}
	s, rep, hsFailed := o.open(ctx, h, req, tryTLS)
	if hsFailed {
		o.noteTLS(h.Addr, true, true)
		if fallback {
			o.log.Warn("relay: STARTTLS handshake failed, retrying in plaintext",
				"host", h.Host, "addr", h.Addr.String(), "tls_source", req.Source, "err", rep.Err)
			s, rep, _ = o.open(ctx, h, req, false)
		}
	}
	return s, rep
}

// open runs connect, greeting, EHLO, STARTTLS and AUTH. hsFailed reports a
// TLS handshake failure after the server agreed to STARTTLS.
func (o *Client) open(ctx context.Context, h Hop, req TLSRequirement, tryTLS bool) (s *Session, rep *reply.Reply, hsFailed bool) {
	dctx, cancel := context.WithTimeout(ctx, o.opt.DialTimeout)
	conn, err := o.opt.Dialer(o.localAddr(h.Addr.Addr())).DialContext(dctx, "tcp", h.Addr.String())
	cancel()
	if err != nil {
		r := netReply(reply.StageConnect, fmt.Errorf("relay: connect to %s[%s]: %w", h.Host, h.Addr, err))
		return nil, &r, false
	}
	sess := &Session{o: o, hop: h, req: req, raw: conn, w: newWire(conn, conn, o.now, o.opt.CommandTimeout), usable: true,
		single: req.Source == reportSource}
	sess.w.ctx = ctx
	stop := context.AfterFunc(ctx, sess.interrupt)
	defer func() {
		sess.w.ctx = nil
		if !stop() && rep == nil {
			// Cancelled just as we finished: the interrupt may still
			// land on the conn, so this session cannot be trusted.
			sess.usable = false
			sess.Close()
			r := netReply(reply.StageConnect, ctx.Err())
			s, rep = nil, &r
		}
	}()
	s = sess
	fail := func(r reply.Reply) (*Session, *reply.Reply, bool) {
		if r.Err != nil || r.Code == 421 {
			s.usable = false
		}
		s.Close()
		return nil, &r, false
	}

	resp, err := s.w.read(o.opt.CommandTimeout)
	switch {
	case err != nil:
		return fail(s.netReply(reply.StageGreeting, err))
	case resp.Code == 220:
	case isRefusal(resp.Code):
		return fail(toReply(reply.StageGreeting, resp))
	default:
		return fail(s.unexpected(reply.StageGreeting, resp, "220"))
	}
	if r, ok := s.hello(); !ok {
		return fail(r)
	}
	required := req.Mode != TLSNone && req.Mode != TLSMay && !req.ReportOnly
	if tryTLS {
		_, offered := s.ext["STARTTLS"]
		o.noteTLS(h.Addr, offered, false)
		switch {
		case offered:
			r, ok, hs := s.startTLS(ctx)
			if hs {
				s.usable = false
				s.Close()
				if required && !errors.Is(r.Err, reply.ErrTLSPolicy) {
					r.Err = fmt.Errorf("%w: %w", reply.ErrTLSPolicy, r.Err)
				}
				return nil, &r, true
			}
			if !ok && (required || r.Err != nil || r.Code == 421) {
				return fail(r)
			}
			// may (or testing) and refused: carry on in plaintext on
			// this connection, still in the pre-STARTTLS state (RFC
			// 3207 §4).
		case required:
			o.record(req, h, s.raw, ResultSTARTTLSNotSupported)
			o.log.Warn("relay: TLS policy: STARTTLS not offered", "host", h.Host, "addr", h.Addr.String(), "tls_mode", req.Mode, "tls_source", req.Source)
			return fail(*policyError(reply.StageSTARTTLS, h, fmt.Errorf("%w (%s from %s)", errNoTLS, req.Mode, req.Source)))
		case req.ReportOnly:
			// RFC 8461 §5: a policy in testing mode reports the
			// failure and delivers anyway.
			o.record(req, h, s.raw, ResultSTARTTLSNotSupported)
			o.log.Warn("relay: TLS policy (testing, delivering anyway): STARTTLS not offered", "host", h.Host, "addr", h.Addr.String(), "tls_source", req.Source)
		}
	}
	if h.Auth {
		if r, ok := s.auth(); !ok {
			return fail(r)
		}
	}
	return s, nil, false
}

// hello sends EHLO with our hostname, falling back to HELO when the server
// does not know EHLO (RFC 5321 §3.2).
func (s *Session) hello() (reply.Reply, bool) {
	name := s.o.opt.Hostname
	resp, err := s.w.cmd("EHLO " + name)
	switch {
	case err != nil:
		return s.netReply(reply.StageEHLO, err), false
	case resp.Code == 250:
		s.ext = extensions(resp)
		return reply.Reply{}, true
	case resp.Code == 500 || resp.Code == 502:
		// Not understood: try HELO below.
	case isRefusal(resp.Code):
		return toReply(reply.StageEHLO, resp), false
	default:
		return s.unexpected(reply.StageEHLO, resp, "250"), false
	}
	resp, err = s.w.cmd("HELO " + name)
	switch {
	case err != nil:
		return s.netReply(reply.StageEHLO, err), false
	case resp.Code == 250:
		s.ext = map[string]string{}
		return reply.Reply{}, true
	case isRefusal(resp.Code):
		return toReply(reply.StageEHLO, resp), false
	default:
		return s.unexpected(reply.StageEHLO, resp, "250"), false
	}
}

// startTLS upgrades the connection and says EHLO again, as RFC 3207 §4.2
// requires: the server forgets everything it learnt before the handshake.
func (s *Session) startTLS(ctx context.Context) (r reply.Reply, ok, hsFailed bool) {
	// cmd refuses data buffered after the 220: it was sent before the
	// handshake and would be read as if it came over TLS (the STARTTLS
	// command injection attack, RFC 3207 §6).
	resp, err := s.w.cmd("STARTTLS")
	switch {
	case err != nil:
		return s.netReply(reply.StageSTARTTLS, err), false, false
	case resp.Code == 220:
	case isRefusal(resp.Code):
		return toReply(reply.StageSTARTTLS, resp), false, false
	default:
		return s.unexpected(reply.StageSTARTTLS, resp, "220"), false, false
	}
	var v peerCheck
	tc := tls.Client(s.raw, s.o.tlsConfig(s.hop, s.req, s.raw, &v))
	if err := s.w.deadline(s.o.opt.CommandTimeout); err != nil {
		return s.netReply(reply.StageSTARTTLS, err), false, false
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		if !errors.Is(err, reply.ErrTLSPolicy) {
			// A refusal by VerifyConnection was recorded there, with
			// its own result type; this is a handshake that failed.
			s.o.record(s.req, s.hop, s.raw, resultType(err))
		}
		return s.netReply(reply.StageSTARTTLS, fmt.Errorf("relay: TLS handshake with %s: %w", s.Relay(), err)), false, true
	}
	// Verified: the peer passed the requirement's verification (under
	// a testing policy too, when it did: RFC 8689 §4.2.1 reads a testing
	// MTA-STS policy as enforced for REQUIRETLS).
	s.verified = v.passed
	if !v.failed {
		// A testing policy's failure was recorded as one; the session
		// is not also a success (RFC 8460 §4.4 counts sessions).
		s.o.record(s.req, s.hop, s.raw, "")
	}
	s.w = newWire(tc, s.raw, s.o.now, s.o.opt.CommandTimeout)
	s.w.ctx = ctx
	s.tls = true
	s.ext = nil
	if r, ok := s.hello(); !ok {
		return r, false, false
	}
	return reply.Reply{}, true, false
}

// auth sends AUTH PLAIN (RFC 4616) with the smarthost credentials, only
// over TLS: the password would otherwise cross the network in clear.
func (s *Session) auth() (reply.Reply, bool) {
	if !s.tls {
		return reply.Reply{Stage: reply.StageAuth, Err: errCredsInClear}, false
	}
	sh := s.o.opt.Smarthost
	tok := base64.StdEncoding.EncodeToString([]byte("\x00" + sh.Username + "\x00" + sh.Password))
	resp, err := s.w.cmd("AUTH PLAIN " + tok)
	switch {
	case err != nil:
		return s.netReply(reply.StageAuth, err), false
	case resp.Code == 235: // RFC 4954 §6
		return reply.Reply{}, true
	case isRefusal(resp.Code):
		return toReply(reply.StageAuth, resp), false
	default:
		// A 334 challenge to an initial response we sent, or any other
		// code: we would be answering out of sequence.
		return s.unexpected(reply.StageAuth, resp, "235"), false
	}
}

// peerCheck is what VerifyConnection found: the peer passed the
// requirement's verification, or failed it (and was recorded so).
type peerCheck struct{ passed, failed bool }

// tlsConfig derives the client config for one hop. crypto/tls's own
// verification is off: verifyPeer does it in VerifyConnection, by the
// requirement (PKIX for the name, DANE's Verify, or none under may and
// encrypt: RFC 7435 §4, encryption without authentication beats
// cleartext). Under a policy in testing mode a verification failure is
// logged and recorded, and the handshake goes on (RFC 8461 §5).
func (o *Client) tlsConfig(h Hop, req TLSRequirement, conn net.Conn, v *peerCheck) *tls.Config {
	var cfg *tls.Config
	if o.opt.TLSConfig != nil {
		cfg = o.opt.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if req.ServerName != "" {
		cfg.ServerName = req.ServerName
	} else if cfg.ServerName == "" {
		cfg.ServerName = h.Host
	}
	name := cfg.ServerName
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		err := o.verifyPeer(req, name, cs)
		if err == nil {
			v.passed = req.Mode == TLSVerify
			return nil
		}
		v.failed = true
		o.record(req, h, conn, resultType(err))
		if req.ReportOnly {
			o.log.Warn("relay: TLS policy (testing, delivering anyway): certificate does not verify",
				"host", h.Host, "addr", h.Addr.String(), "tls_source", req.Source, "err", err)
			return nil
		}
		o.log.Warn("relay: TLS policy: certificate does not verify", "host", h.Host, "addr", h.Addr.String(),
			"tls_mode", req.Mode, "tls_source", req.Source, "err", err)
		return fmt.Errorf("%w: %w", reply.ErrTLSPolicy, err)
	}
	return cfg
}

func (o *Client) tlsFailedRecently(a netip.AddrPort) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.tlsCache.Get(a)
	return ok && e.failed && o.now().Before(e.expires)
}

func (o *Client) noteTLS(a netip.AddrPort, offered, failed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	o.tlsCache.Evict(now, o.opt.TLSCacheTTL, nil) // all stored with one lifetime: the oldest are the expired
	o.tlsCache.Put(a, tlsEntry{offered: offered, failed: failed, expires: now.Add(o.opt.TLSCacheTTL)}, now)
}

// STARTTLSOffered reports what the server at addr last said about
// STARTTLS, if known and fresh: for the mail log and the admin view.
func (o *Client) STARTTLSOffered(addr netip.AddrPort) (offered, known bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.tlsCache.Get(addr)
	if !ok || !o.now().Before(e.expires) {
		return false, false
	}
	return e.offered, true
}

// record counts a session's outcome under req in the TLS-RPT tally
// (result "" = success), with the peers RFC 8460 §4.4's failure-details
// name: our address (the connection's, else the configured outbound
// address), the MX host name and its address.
func (o *Client) record(req TLSRequirement, h Hop, conn net.Conn, result string) {
	if o.opt.TLSResults == nil || req.unreported {
		return
	}
	out := TLSOutcome{Domain: req.PolicyDomain, Type: req.PolicyType, PolicyStrings: req.PolicyStrings, MXHosts: req.MXHosts}
	if result != "" {
		d := TLSFailureDetail{Result: result, ReceivingMX: h.Host}
		if h.Addr.IsValid() {
			d.ReceivingIP = h.Addr.Addr().Unmap().String()
		}
		if conn != nil {
			if ap, err := netip.ParseAddrPort(conn.LocalAddr().String()); err == nil {
				d.SendingIP = ap.Addr().Unmap().String()
			}
		} else if a := o.localAddr(h.Addr.Addr()); a.IsValid() {
			d.SendingIP = a.String()
		}
		out.Detail = d
	}
	o.opt.TLSResults.Record(out)
}
