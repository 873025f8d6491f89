package config

import (
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"sluice/lint"
)

// Enumerations accepted by the enum-valued keys.
var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
	tlsModes   = TLSModes
	groupBys   = []string{"domain", "mx"}
	authModes  = []string{"off", "warn", "enforce"}
	lintModes  = []string{"off", "warn", "enforce"}
	// ruleClasses mirrors the policy.Class values an operator may force;
	// "success" is not among them. Kept here rather than importing policy
	// so that policy may depend on config without a cycle.
	ruleClasses = []string{"throttle", "suspend", "unavailable", "greylist", "recipient-temp", "auth-fix", "permanent", "reconnect"}
	ruleScopes  = []string{"", "connections", "rate", "both"}
)

// checker accumulates semantic errors, each naming its key.
type checker struct{ errs []*Error }

func (ck *checker) add(key, format string, args ...any) {
	ck.errs = append(ck.errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (ck *checker) enum(key, v string, allowed []string) {
	if !slices.Contains(allowed, v) {
		ck.add(key, "invalid value %q (want one of %s)", v, strings.Join(quoteAll(allowed), ", "))
	}
}

func (ck *checker) positive(key string, v Duration) {
	if v <= 0 {
		ck.add(key, "must be a positive duration")
	}
}

func (ck *checker) atLeast(key string, v, min int) {
	if v < min {
		ck.add(key, "must be at least %d, not %d", min, v)
	}
}

// hostPort accepts "host:port" with a numeric port (empty host = all
// addresses).
func (ck *checker) hostPort(key, v string) {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		ck.add(key, "invalid address %q: want host:port", v)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		ck.add(key, "invalid port in %q", v)
	}
}

// cidr accepts a network prefix whose host bits are zero. "10.0.0.1/8"
// is refused rather than read as 10.0.0.0/8: the operator meant either
// one host or the whole network, and guessing wrong opens a relay to
// sixteen million addresses or shuts out the one that was meant.
func (ck *checker) cidr(key, v string) {
	p, err := netip.ParsePrefix(v)
	if err != nil {
		ck.add(key, "invalid CIDR %q", v)
		return
	}
	if m := p.Masked(); m != p {
		ck.add(key, "%q has host bits set: did you mean %q (the network) or \"%s/%d\" (the one host)?", v, m.String(), p.Addr(), p.Addr().BitLen())
	}
}

// httpHost accepts a host name or IP literal, with an optional port.
func (ck *checker) httpHost(key, v string) {
	bad := func() {
		ck.add(key, "invalid host %q: want a name or address, optionally with :port (no scheme, path or wildcard)", v)
	}
	if strings.ContainsAny(v, "/@ \t*") {
		bad()
		return
	}
	host := v
	if h, port, err := net.SplitHostPort(v); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			ck.add(key, "invalid port in %q", v)
			return
		}
		host = h
	}
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return
	}
	if host == "" || strings.ContainsAny(host, ":[]") {
		bad()
	}
}

func (ck *checker) fileExists(key, path string) {
	if _, err := os.Stat(path); err != nil {
		ck.add(key, "%v", err)
	}
}

func (ck *checker) domain(key, v string) {
	if v == "" || strings.ContainsAny(v, "@ \t[]") || strings.HasPrefix(v, ".") {
		ck.add(key, "invalid domain %q", v)
	}
}

func quoteAll(s []string) []string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return q
}

func idx(key string, i int) string { return key + "[" + strconv.Itoa(i+1) + "]" }

// minMemoryLimit is the lowest memory_limit accepted.
const minMemoryLimit = 64 << 20

// validate checks what the TOML types cannot express. It returns every
// problem rather than the first, so an operator fixes a file in one go.
func (c *Config) validate() []*Error {
	ck := &checker{}
	if c.Hostname == "" || strings.ContainsAny(c.Hostname, " \t@/") {
		ck.add("hostname", "invalid host name %q", c.Hostname)
	}
	if c.DataDir == "" {
		ck.add("data_dir", "must not be empty")
	}
	if c.ShutdownGrace < 0 {
		ck.add("shutdown_grace", "must not be negative")
	}
	// Below a few tens of MB the collector would run all the time (it
	// may then take half the CPU) for no gain.
	if c.MemoryLimit != 0 && c.MemoryLimit < minMemoryLimit {
		ck.add("memory_limit", "%d bytes is too low: use at least 64MB, or \"0\" for no limit", c.MemoryLimit)
	}
	ck.enum("log.level", c.Log.Level, logLevels)
	ck.enum("log.format", c.Log.Format, logFormats)
	c.validateListen(ck)
	c.validateAccess(ck)
	c.validateLimits(ck)
	ck.positive("queue.retention", c.Queue.Retention)
	ck.positive("queue.lock_timeout", c.Queue.LockTimeout)
	c.validateDelivery(ck)
	c.validatePolicy(ck)
	c.validateAuth(ck)
	c.validateLint(ck)
	c.validateEvents(ck)
	c.validateCluster(ck)
	c.validateTLSRPT(ck)
	return ck.errs
}

func (c *Config) validateCluster(ck *checker) {
	cl := &c.Cluster
	if cl.Redis == "" {
		return
	}
	if u, err := url.Parse(cl.Redis); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		// The value may hold a password: it is not repeated.
		ck.add("cluster.redis", "not a redis:// or rediss:// URL with a host")
	}
	if strings.ContainsAny(cl.NodeID, "/ \t") {
		ck.add("cluster.node_id", "%q: no slash or space (lease ids are node/run/sequence)", cl.NodeID)
	}
	if cl.Prefix == "" {
		ck.add("cluster.prefix", "must not be empty: the keys of a fleet need a prefix of their own")
	}
	ck.positive("cluster.lease_ttl", cl.LeaseTTL)
	ck.positive("cluster.heartbeat", cl.Heartbeat)
	if cl.Heartbeat > 0 && 2*cl.Heartbeat > cl.LeaseTTL {
		ck.add("cluster.heartbeat", "%v is more than half of lease_ttl %v: one late heartbeat would free the node's live sessions", time.Duration(cl.Heartbeat), time.Duration(cl.LeaseTTL))
	}
}

// eventTypes mirrors queue.EventTypes (config may not import queue).
var eventTypes = []string{"accepted", "deferred", "delivered", "bounced", "expired", "delayed", "suppressed", "held", "released", "deleted"}

func (c *Config) validateEvents(ck *checker) {
	e := &c.Events
	ck.positive("events.retention", e.Retention)
	if e.MaxBytes < 1<<20 {
		ck.add("events.max_bytes", "%d bytes is too small for an outbox: use at least 1MB", e.MaxBytes)
	}
	seen := map[string]bool{}
	for i, w := range e.Webhooks {
		key := func(k string) string { return idx("events.webhook", i) + "." + k }
		u, err := url.Parse(w.URL)
		switch {
		case w.URL == "" || err != nil || u.Host == "":
			ck.add(key("url"), "want an absolute http:// or https:// URL")
		case u.Scheme != "http" && u.Scheme != "https":
			ck.add(key("url"), "scheme %q: want http or https", u.Scheme)
		case seen[w.URL]:
			ck.add(key("url"), "the same URL twice: one webhook per endpoint")
		}
		seen[w.URL] = true
		if w.SecretFile == "" {
			ck.add(key("secret_file"), "required: every POST is signed (HMAC-SHA256)")
		}
		for _, t := range w.Events {
			ck.enum(key("events"), t, eventTypes)
		}
		if w.Batch < 1 || w.Batch > 10000 {
			ck.add(key("batch"), "must be between 1 and 10000, not %d", w.Batch)
		}
		ck.positive(key("timeout"), w.Timeout)
	}
}

func (c *Config) validateListen(ck *checker) {
	l := c.Listen
	for _, a := range []struct{ key, v string }{
		{"listen.smtp", l.SMTP}, {"listen.submission", l.Submission},
		{"listen.submissions", l.Submissions}, {"listen.http", l.HTTP}, {"listen.api", l.API},
	} {
		if a.v != "" {
			ck.hostPort(a.key, a.v)
		}
	}
	if p, ok := strings.CutPrefix(l.Admin, "unix:"); ok {
		if p == "" {
			ck.add("listen.admin", "empty socket path in %q", l.Admin)
		}
	} else if l.Admin != "" {
		ck.hostPort("listen.admin", l.Admin)
		// Loopback included: every local user, and every page the
		// operator's browser opens, can reach 127.0.0.1.
		if l.AdminTokenFile == "" {
			ck.add("listen.admin", "a TCP admin address needs listen.admin_token_file (loopback included); or use a \"unix:PATH\" socket, which needs none")
		}
	}
	for i, h := range l.HTTPHosts {
		ck.httpHost(idx("listen.http_hosts", i), h)
	}
	if l.AdminTokenFile != "" {
		ck.fileExists("listen.admin_token_file", l.AdminTokenFile)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		ck.add("tls.cert_file", "cert_file and key_file must be set together")
	}
	if c.TLS.CertFile != "" {
		ck.fileExists("tls.cert_file", c.TLS.CertFile)
	}
	if c.TLS.KeyFile != "" {
		ck.fileExists("tls.key_file", c.TLS.KeyFile)
	}
	if l.Submissions != "" && c.TLS.CertFile == "" {
		ck.add("listen.submissions", "implicit TLS needs [tls] cert_file and key_file")
	}
	// Submission requires AUTH, and AUTH is offered only over TLS
	// (RFC 4954 §4): without a certificate nobody could ever submit.
	if l.Submission != "" && c.TLS.CertFile == "" {
		ck.add("listen.submission", "needs [tls] cert_file and key_file: AUTH is offered only over TLS")
	}
	// The API's bearer tokens are credentials as SMTP AUTH passwords are:
	// off the loopback they travel only over TLS (RFC 6750 §5.3).
	if l.API != "" && c.TLS.CertFile == "" && !loopbackHostPort(l.API) {
		ck.add("listen.api", "%q is not a loopback address: needs [tls] cert_file and key_file (API tokens travel only over TLS off this host)", l.API)
	}
	c.validateListenOverlap(ck)
}

// validateListenOverlap refuses two listeners on one port when their
// hosts overlap (the same host, or a wildcard): the second bind would
// fail at start-up.
func (c *Config) validateListenOverlap(ck *checker) {
	l := c.Listen
	type bind struct{ key, host, port string }
	var seen []bind
	for _, a := range []struct{ key, v string }{
		{"listen.smtp", l.SMTP}, {"listen.submission", l.Submission}, {"listen.submissions", l.Submissions},
		{"listen.admin", l.Admin}, {"listen.http", l.HTTP}, {"listen.api", l.API},
	} {
		host, port, err := net.SplitHostPort(a.v)
		if err != nil || port == "0" || strings.HasPrefix(a.v, "unix:") {
			continue
		}
		for _, b := range seen {
			if b.port == port && (b.host == host || wildcardHost(b.host) || wildcardHost(host)) {
				ck.add(a.key, "%q overlaps %s (%q): both cannot bind", a.v, b.key, net.JoinHostPort(b.host, b.port))
			}
		}
		seen = append(seen, bind{a.key, host, port})
	}
}

func wildcardHost(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }

func (c *Config) validateAccess(ck *checker) {
	for i, n := range c.Access.Networks {
		ck.cidr(idx("access.networks", i), n)
	}
	// At least 1: a zero would have to mean either "lock every client
	// out" or "let password guessing run unchecked"; neither is safe to
	// read into a 0.
	ck.atLeast("access.auth_failures", c.Access.AuthFailures, 1)
	seen, tokens := map[string]bool{}, map[string]string{}
	for i, u := range c.Access.Users {
		k := idx("access.user", i)
		if u.Name == "" {
			ck.add(k+".name", "must not be empty")
		} else if seen[u.Name] {
			ck.add(k+".name", "duplicate user %q", u.Name)
		}
		seen[u.Name] = true
		// Only bcrypt hashes ("$2a$", "$2b$", "$2y$") are accepted: a
		// plain-text password here would be a silent security hole. A
		// user may have an API token instead of a password.
		switch {
		case u.PasswordHash == "" && u.APITokenHash != "":
			// An API-only user: no SMTP AUTH.
		case u.PasswordHash == "":
			ck.add(k+".password_hash", "a user needs password_hash (SMTP AUTH), api_token_hash (HTTP API) or both")
		case !strings.HasPrefix(u.PasswordHash, "$2"):
			ck.add(k+".password_hash", "not a bcrypt hash (want \"$2...\")")
		default:
			if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
				ck.add(k+".password_hash", "malformed bcrypt hash: %v", err)
			}
		}
		if u.APITokenHash != "" {
			if _, err := ParseTokenHash(u.APITokenHash); err != nil {
				ck.add(k+".api_token_hash", "%v", err)
			} else if prev, dup := tokens[strings.ToLower(u.APITokenHash)]; dup {
				ck.add(k+".api_token_hash", "the same token as user %q: a token must name one user", prev)
			}
			tokens[strings.ToLower(u.APITokenHash)] = u.Name
		}
		for j, d := range u.AllowedFrom {
			ck.domain(idx(k+".allowed_from", j), d)
		}
	}
}

func (c *Config) validateLimits(ck *checker) {
	l := c.Limits
	if l.MaxMessageSize <= 0 {
		ck.add("limits.max_message_size", "must be positive")
	}
	if l.MaxInflightBytes != 0 && l.MaxInflightBytes < l.MaxMessageSize {
		ck.add("limits.max_inflight_bytes", "%d bytes is below limits.max_message_size (%d): one message at a time; use at least that, or \"0\" for no bound", l.MaxInflightBytes, l.MaxMessageSize)
	}
	ck.atLeast("limits.max_recipients", l.MaxRecipients, 1)
	// RFC 5321 §4.5.3.1.6: a text line may be 1000 octets with CRLF.
	ck.atLeast("limits.max_line_length", l.MaxLineLength, 1000)
	ck.atLeast("limits.max_connections", l.MaxConnections, 1)
	ck.atLeast("limits.per_client_connections", l.PerClientConnections, 1)
	if l.PerClientConnections > l.MaxConnections {
		ck.add("limits.per_client_connections", "%d exceeds limits.max_connections (%d)", l.PerClientConnections, l.MaxConnections)
	}
	ck.positive("limits.read_timeout", l.ReadTimeout)
	ck.positive("limits.write_timeout", l.WriteTimeout)
	ck.positive("limits.idle_timeout", l.IdleTimeout)
	ck.positive("limits.data_timeout", l.DataTimeout)
}

func (c *Config) validateDelivery(ck *checker) {
	d := c.Delivery
	for i, ip := range d.OutboundIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			ck.add(idx("delivery.outbound_ips", i), "invalid IP address %q", ip)
		}
	}
	ck.enum("delivery.tls", d.TLS, tlsModes)
	if d.Port < 1 || d.Port > 65535 {
		ck.add("delivery.port", "invalid port %d", d.Port)
	}
	ck.positive("delivery.max_queue_lifetime", d.MaxQueueLifetime)
	if d.DelayWarning < 0 {
		ck.add("delivery.delay_warning", "must not be negative (0 turns delay notices off)")
	} else if d.DelayWarning > 0 && d.MaxQueueLifetime > 0 && d.DelayWarning >= d.MaxQueueLifetime {
		// The recipient would expire before its notice could go out.
		ck.add("delivery.delay_warning", "must be shorter than delivery.max_queue_lifetime (%s), or 0 for no delay notices", d.MaxQueueLifetime)
	}
	ck.positive("delivery.dial_timeout", d.DialTimeout)
	ck.positive("delivery.command_timeout", d.CommandTimeout)
	ck.positive("delivery.data_timeout", d.DataTimeout)
	if d.ConnectionIdle < 0 {
		ck.add("delivery.connection_idle", "must not be negative")
	}
	ck.atLeast("delivery.max_messages_per_connection", d.MaxMessagesPerConnection, 1)
	ck.atLeast("delivery.max_sessions", d.MaxSessions, 1)
	if d.Resolver != "" {
		// An IP address: a name would need DNS to find the DNS server.
		if ap, err := netip.ParseAddrPort(d.Resolver); err != nil || ap.Port() == 0 {
			ck.add("delivery.resolver", "invalid resolver %q: want ip:port, such as \"127.0.0.1:53\"", d.Resolver)
		}
	}
	if d.ResolverDNSSEC {
		// RFC 7672 §2.1.3 (and RFC 4035 §4.9.3): the AD bit is only as
		// trustworthy as the path from the validating resolver; off the
		// host, anyone on the path can set it and forge "secure" TLSA
		// records or secure denials. So only a named loopback resolver
		// (resolv.conf could change under us) is trusted.
		if ap, err := netip.ParseAddrPort(d.Resolver); err != nil || !ap.Addr().IsLoopback() {
			ck.add("delivery.resolver_dnssec", "needs delivery.resolver to name a validating resolver on loopback (such as \"127.0.0.1:53\"), not %q: the AD bit cannot be trusted across a network", d.Resolver)
		}
	}
	if d.MTASTSPort < 1 || d.MTASTSPort > 65535 {
		ck.add("delivery.mta_sts_port", "must be a port number, not %d", d.MTASTSPort)
	} else if d.MTASTSPort != 443 {
		// RFC 8461 §3.3 fixes the policy URL (https, default port): on
		// the Internet another port fetches nothing, or whatever a host
		// serves there. Only a lab that answers its own DNS (a loopback
		// resolver) may move it.
		if ap, err := netip.ParseAddrPort(d.Resolver); err != nil || !ap.Addr().IsLoopback() {
			ck.add("delivery.mta_sts_port", "%d needs delivery.resolver on loopback (a lab whose DNS you run): on the Internet MTA-STS policies are served on 443 (RFC 8461 §3.3)", d.MTASTSPort)
		}
	}
	ck.atLeast("delivery.resolver_concurrency", d.ResolverConcurrency, 1)
	// A floor of 0 would let a failed lookup be asked again at once, by
	// every message waiting for it.
	ck.positive("delivery.resolver_min_ttl", d.ResolverMinTTL)
	if d.ResolverMaxTTL < d.ResolverMinTTL {
		ck.add("delivery.resolver_max_ttl", "%s is below delivery.resolver_min_ttl (%s)", d.ResolverMaxTTL, d.ResolverMinTTL)
	}
	seen := map[string]bool{}
	for i, r := range d.Routes {
		k := idx("delivery.route", i)
		ck.domain(k+".domain", r.Domain)
		if seen[strings.ToLower(r.Domain)] {
			ck.add(k+".domain", "duplicate route for %q", r.Domain)
		}
		seen[strings.ToLower(r.Domain)] = true
		ck.hostPort(k+".host", r.Host)
		if r.TLS != "" {
			ck.enum(k+".tls", r.TLS, tlsModes)
		}
	}
	sh := d.Smarthost
	if sh.Host != "" {
		ck.hostPort("delivery.smarthost.host", sh.Host)
	}
	if sh.TLS != "" {
		ck.enum("delivery.smarthost.tls", sh.TLS, tlsModes)
	}
	if sh.Username != "" && sh.PasswordFile == "" {
		ck.add("delivery.smarthost.password_file", "required when username is set")
	}
	if sh.Host == "" && (sh.Username != "" || sh.PasswordFile != "") {
		ck.add("delivery.smarthost.host", "required when username or password_file is set")
	}
	ck.tlsPolicies(d)
}

// modeSource refuses a mandatory mode whose source is off: it would
// fail every delivery it covers (a tls-policy failure), never deliver.
func (ck *checker) modeSource(key, mode string, d Delivery) {
	switch {
	case mode == "mta-sts" && !d.MTASTS:
		ck.add(key, "mta-sts needs delivery.mta_sts = true")
	case mode == "dane" && !d.ResolverDNSSEC:
		ck.add(key, "dane needs delivery.resolver_dnssec = true (a validating resolver on loopback): without a trusted AD bit no TLSA record is usable")
	}
}

// tlsPolicies checks [[delivery.tls_policy]], delivery.ca_file and the
// modes that need MTA-STS (issue 14).
func (ck *checker) tlsPolicies(d Delivery) {
	seen := map[string]bool{}
	for i, p := range d.TLSPolicies {
		k := idx("delivery.tls_policy", i)
		ck.domain(k+".domain", p.Domain)
		dom := strings.TrimSuffix(strings.ToLower(p.Domain), ".")
		if seen[dom] {
			ck.add(k+".domain", "duplicate tls_policy for %q", p.Domain)
		}
		seen[dom] = true
		ck.enum(k+".mode", p.Mode, tlsModes)
		ck.modeSource(k+".mode", p.Mode, d)
	}
	ck.modeSource("delivery.tls", d.TLS, d)
	for i, r := range d.Routes {
		ck.modeSource(idx("delivery.route", i)+".tls", r.TLS, d)
	}
	ck.modeSource("delivery.smarthost.tls", d.Smarthost.TLS, d)
	if d.CAFile != "" {
		b, err := os.ReadFile(d.CAFile)
		switch {
		case err != nil:
			ck.add("delivery.ca_file", "%v", err)
		case !x509.NewCertPool().AppendCertsFromPEM(b):
			ck.add("delivery.ca_file", "no PEM certificate in %s", d.CAFile)
		}
	}
}

func (c *Config) validatePolicy(ck *checker) {
	p := c.Policy
	ck.positive("policy.retry_base", p.RetryBase)
	ck.positive("policy.retry_max", p.RetryMax)
	if p.RetryMax < p.RetryBase {
		ck.add("policy.retry_max", "%s is below policy.retry_base (%s)", p.RetryMax, p.RetryBase)
	}
	ck.positive("policy.greylist_default", p.GreylistDefault)
	ck.positive("policy.max_hint", p.MaxHint)
	ck.atLeast("policy.max_concurrency", p.MaxConcurrency, 1)
	ck.atLeast("policy.min_concurrency", p.MinConcurrency, 1)
	ck.atLeast("policy.initial_concurrency", p.InitialConcurrency, 0)
	if p.InitialConcurrency > p.MaxConcurrency {
		ck.add("policy.initial_concurrency", "%d exceeds policy.max_concurrency (%d)", p.InitialConcurrency, p.MaxConcurrency)
	}
	if p.MinConcurrency > p.MaxConcurrency {
		ck.add("policy.min_concurrency", "%d exceeds policy.max_concurrency (%d)", p.MinConcurrency, p.MaxConcurrency)
	}
	if p.MinRate.Unlimited() {
		// The floor of rate cuts: "" would let a cut lift the cap.
		ck.add("policy.min_rate", "must be a rate such as \"1/s\", not \"\"")
	} else if !p.Rate.Unlimited() && p.MinRate.Limit > p.Rate.Limit {
		ck.add("policy.min_rate", "%s exceeds policy.rate (%s)", p.MinRate, p.Rate)
	}
	ck.enum("policy.group_by", p.GroupBy, groupBys)
	ck.positive("policy.decrease_window", p.DecreaseWindow)
	ck.atLeast("policy.increase_after", p.IncreaseAfter, 1)
	if !(p.AlarmShare > 0 && p.AlarmShare <= 1) {
		ck.add("policy.alarm_share", "must be in (0, 1], not %v", p.AlarmShare)
	}
	ck.positive("policy.alarm_window", p.AlarmWindow)
	ck.atLeast("policy.alarm_min_destinations", p.AlarmMinDestinations, 1)
	ck.atLeast("policy.suppress_after_expiries", p.SuppressAfterExpiries, 0)
	seenMatch := map[string]bool{}
	for i, d := range p.Destinations {
		k := idx("policy.destination", i)
		m := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d.Match)), ".")
		if m == "" {
			ck.add(k+".match", "must not be empty")
		} else if seenMatch[m] {
			// Two entries for one name would leave which one applies to
			// the order of the file; say so instead.
			ck.add(k+".match", "duplicate destination %q", d.Match)
		}
		seenMatch[m] = true
		ck.atLeast(k+".max_concurrency", d.MaxConcurrency, 0)
	}
	for i, r := range p.Rules {
		k := idx("policy.rule", i)
		if r.Match == "" {
			ck.add(k+".match", "must not be empty")
		} else if _, err := regexp.Compile(r.Match); err != nil {
			ck.add(k+".match", "invalid regexp: %v", err)
		}
		ck.enum(k+".class", r.Class, ruleClasses)
		if r.Class == "suspend" && r.For <= 0 {
			ck.add(k+".for", "required for class \"suspend\"")
		}
		ck.enum(k+".scope", r.Scope, ruleScopes)
		if r.Scope != "" && r.Class != "throttle" {
			ck.add(k+".scope", "only applies to class \"throttle\"")
		}
	}
	for i, pr := range p.Providers {
		k := idx("policy.provider", i)
		if pr.Name == "" {
			ck.add(k+".name", "must not be empty")
		}
		if len(pr.Suffixes) == 0 {
			ck.add(k+".suffixes", "must not be empty")
		}
		for j, s := range pr.Suffixes {
			if strings.Trim(s, ".") == "" || strings.ContainsAny(s, " \t@") {
				ck.add(idx(k+".suffixes", j), "invalid host suffix %q", s)
			}
		}
	}
}

func (c *Config) validateAuth(ck *checker) {
	a := c.Auth
	ck.enum("auth.mode", a.Mode, authModes)
	if a.Mode == "enforce" && len(c.Delivery.OutboundIPs) == 0 {
		ck.add("auth.mode", "\"enforce\" needs delivery.outbound_ips: SPF cannot be judged on a guessed address; set delivery.outbound_ips")
	}
	ck.positive("auth.dns_timeout", a.DNSTimeout)
	ck.positive("auth.cache_ttl", a.CacheTTL)
	ck.positive("auth.resolver_cooldown", a.ResolverCooldown)
	for i, d := range a.DKIM {
		k := idx("auth.dkim", i)
		ck.domain(k+".domain", d.Domain)
		if d.Selector == "" || strings.ContainsAny(d.Selector, " \t@;") {
			ck.add(k+".selector", "invalid selector %q", d.Selector)
		}
		if d.KeyFile == "" {
			ck.add(k+".key_file", "must not be empty")
		} else {
			ck.fileExists(k+".key_file", d.KeyFile)
		}
	}
}

func (c *Config) validateLint(ck *checker) {
	l := c.Lint
	ck.enum("lint.mode", l.Mode, lintModes)
	ids := lint.IDs()
	for i, id := range l.Disabled {
		if !slices.Contains(ids, id) {
			ck.add(idx("lint.disabled", i), "unknown finding ID %q (want one of %s)", id, strings.Join(ids, ", "))
		}
	}
	for i, d := range l.Shorteners {
		if strings.ContainsAny(d, "/:") {
			ck.add(idx("lint.shorteners", i), "invalid domain %q: want a domain name, not a URL", d)
			continue
		}
		ck.domain(idx("lint.shorteners", i), d)
	}
	ck.atLeast("lint.bulk_per_day", l.BulkPerDay, 1)
	ck.positive("lint.warn_interval", l.WarnInterval)
	if l.MaxBytes < 1024 {
		ck.add("lint.max_bytes", "must be at least 1KB: the header section alone may need it")
	}
	if l.WarnBudget < 0 || l.WarnBudget > 1 {
		ck.add("lint.warn_budget", "must be from 0%% to 100%% of the machine's CPU, not %s", l.WarnBudget)
	}
}

// loopbackHostPort reports whether a host:port binds the loopback only.
func loopbackHostPort(hp string) bool {
	host, _, err := net.SplitHostPort(hp)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// ParseTokenHash parses an api_token_hash, "sha256:" and 64 hex digits
// (what `sluice token new` prints), into the 32-byte digest. Only SHA-256:
// the tokens are 256 random bits, so a fast hash is enough (no dictionary
// to slow down), and a request costs microseconds where bcrypt would cost
// some 50 ms of CPU.
func ParseTokenHash(s string) ([]byte, error) {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok {
		return nil, fmt.Errorf("%q: want \"sha256:\" and 64 hex digits, from `sluice token new`", s)
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("\"sha256:%s\": want 64 hex digits after \"sha256:\"", h)
	}
	return b, nil
}

// validateTLSRPT checks [tlsrpt]. The identity goes into header fields
// and reports that receivers read: no control characters, and all of
// it present once reporting is on.
func (c *Config) validateTLSRPT(ck *checker) {
	r := c.TLSRPT
	for _, kv := range [][2]string{{"tlsrpt.organization_name", r.OrganizationName}, {"tlsrpt.contact_info", r.ContactInfo}, {"tlsrpt.from", r.From}, {"tlsrpt.submitter", r.Submitter}} {
		if strings.ContainsFunc(kv[1], func(c rune) bool { return c < ' ' || c == 0x7f }) {
			ck.add(kv[0], "must not contain control characters")
		}
	}
	if iv := time.Duration(r.Interval); iv < time.Hour || iv > 24*time.Hour || (24*time.Hour)%iv != 0 {
		ck.add("tlsrpt.interval", "must be between 1h and 24h and divide 24h (RFC 8460 §4.1 periods align on UTC days), not %s", iv)
	}
	if !r.Enabled {
		return
	}
	if strings.TrimSpace(r.OrganizationName) == "" {
		ck.add("tlsrpt.organization_name", "required when tlsrpt.enabled = true")
	}
	plain := func(a string) bool {
		at := strings.LastIndexByte(a, '@')
		return at > 0 && at < len(a)-1 && strings.Count(a, "@") == 1 && !strings.ContainsAny(a, " \t<>()[],;:\"")
	}
	// RFC 8460 §4.4: contact-info is an addr-spec; §5.3: the submitter
	// domain must match its domain.
	if !plain(r.ContactInfo) {
		ck.add("tlsrpt.contact_info", "want a plain address (local@domain) when tlsrpt.enabled = true, not %q", r.ContactInfo)
	}
	if !plain(r.From) {
		ck.add("tlsrpt.from", "want a plain address (local@domain) when tlsrpt.enabled = true, not %q", r.From)
	}
	sub := r.Submitter
	if sub == "" {
		sub = r.DefaultSubmitter() // inherit fills it after validation
	}
	switch {
	case !plain(r.ContactInfo):
	case !strings.EqualFold(strings.TrimSuffix(sub, "."), r.DefaultSubmitter()):
		ck.add("tlsrpt.submitter", "%q must be the domain of tlsrpt.contact_info, %q (RFC 8460 §5.3)", sub, r.DefaultSubmitter())
	default:
		ck.domain("tlsrpt.submitter", sub)
	}
}
