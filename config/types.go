package config

import (
	"crypto/x509"
	"fmt"
	"os"
	"strings"
)

// Config is the whole relay configuration. Field tags are the TOML key
// names of design.md §3: they are a contract with operators and tests.
type Config struct {
	Hostname      string   `toml:"hostname"`
	DataDir       string   `toml:"data_dir"`
	ShutdownGrace Duration `toml:"shutdown_grace"`
	MemoryLimit   Size     `toml:"memory_limit"` // Go's soft memory limit when GOMEMLIMIT is not set; 0 = none

	Log      Log      `toml:"log"`
	Listen   Listen   `toml:"listen"`
	TLS      TLS      `toml:"tls"`
	Access   Access   `toml:"access"`
	Limits   Limits   `toml:"limits"`
	Queue    Queue    `toml:"queue"`
	Delivery Delivery `toml:"delivery"`
	Policy   Policy   `toml:"policy"`
	Auth     Auth     `toml:"auth"`
	Lint     Lint     `toml:"lint"`
	Events   Events   `toml:"events"`
	Cluster  Cluster  `toml:"cluster"`
	TLSRPT   TLSRPT   `toml:"tlsrpt"`
}

// Cluster shares per-destination throttle state between nodes through
// Redis (issue 15, package cluster). Redis "" = off: the node keeps its
// state to itself.
type Cluster struct {
	Redis     string   `toml:"redis"`     // redis://[user:password@]host:port/db, rediss:// for TLS; "" = off
	NodeID    string   `toml:"node_id"`   // this node's name; "" = the machine's hostname (see Node)
	Prefix    string   `toml:"prefix"`    // of every key
	LeaseTTL  Duration `toml:"lease_ttl"` // a dead node's sessions come free within this
	Heartbeat Duration `toml:"heartbeat"` // registry, lease renewal and sync period
}

// Log configures log/slog output.
type Log struct {
	Level  string `toml:"level"`  // debug | info | warn | error
	Format string `toml:"format"` // text | json
}

// Listen holds the listening addresses; "" turns a listener off (except
// Admin, which defaults to a socket under DataDir, see AdminAddress).
type Listen struct {
	SMTP           string   `toml:"smtp"`
	Submission     string   `toml:"submission"`
	Submissions    string   `toml:"submissions"`
	Admin          string   `toml:"admin"`
	AdminTokenFile string   `toml:"admin_token_file"`
	HTTP           string   `toml:"http"`
	HTTPHosts      []string `toml:"http_hosts"` // Host names listen.http answers to, besides its address
	API            string   `toml:"api"`        // the HTTP injection API (relay/httpapi)
}

// TLS is the inbound certificate; both files or neither.
type TLS struct {
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
}

// Access says who may relay.
type Access struct {
	Networks     []string `toml:"networks"`
	AuthFailures int      `toml:"auth_failures"`
	Users        []User   `toml:"user"`
}

// User is one SMTP AUTH account and/or HTTP API token holder.
type User struct {
	Name         string   `toml:"name"`
	PasswordHash string   `toml:"password_hash"`  // bcrypt; "" = no SMTP AUTH
	APITokenHash string   `toml:"api_token_hash"` // "sha256:<64 hex>"; "" = no API token
	AllowedFrom  []string `toml:"allowed_from"`   // sender domains; empty = any
}

// Limits are the inbound limits.
type Limits struct {
	MaxMessageSize       Size     `toml:"max_message_size"`
	MaxInflightBytes     Size     `toml:"max_inflight_bytes"` // 0 = no bound
	MaxRecipients        int      `toml:"max_recipients"`
	MaxLineLength        int      `toml:"max_line_length"`
	MaxConnections       int      `toml:"max_connections"`
	PerClientConnections int      `toml:"per_client_connections"`
	PerClientRate        Rate     `toml:"per_client_rate"`
	ReadTimeout          Duration `toml:"read_timeout"`
	WriteTimeout         Duration `toml:"write_timeout"`
	IdleTimeout          Duration `toml:"idle_timeout"`
	DataTimeout          Duration `toml:"data_timeout"`
	AllowAddressLiterals bool     `toml:"allow_address_literals"`
}

// Queue configures storage.
type Queue struct {
	Retention    Duration `toml:"retention"`
	MinFreeSpace Size     `toml:"min_free_space"`
	LockTimeout  Duration `toml:"lock_timeout"`
}

// Delivery configures the outbound side.
type Delivery struct {
	OutboundIPs              []string  `toml:"outbound_ips"`
	TLS                      string    `toml:"tls"` // none | may | encrypt | verify | dane | mta-sts (opportunistic, require: aliases; canonical after load)
	Port                     int       `toml:"port"`
	MaxQueueLifetime         Duration  `toml:"max_queue_lifetime"`
	DelayWarning             Duration  `toml:"delay_warning"` // delay notice (DSN Action: delayed) after this long; 0 = none
	DialTimeout              Duration  `toml:"dial_timeout"`
	CommandTimeout           Duration  `toml:"command_timeout"`
	DataTimeout              Duration  `toml:"data_timeout"`
	ConnectionIdle           Duration  `toml:"connection_idle"`
	MaxMessagesPerConnection int       `toml:"max_messages_per_connection"`
	MaxSessions              int       `toml:"max_sessions"`
	Resolver                 string    `toml:"resolver"` // "ip:port"; "" = the nameservers of /etc/resolv.conf
	ResolverConcurrency      int       `toml:"resolver_concurrency"`
	ResolverMinTTL           Duration  `toml:"resolver_min_ttl"`
	ResolverMaxTTL           Duration  `toml:"resolver_max_ttl"`
	ResolverDNSSEC           bool      `toml:"resolver_dnssec"` // trust the AD bit for DANE (RFC 7672); loopback resolver only
	Routes                   []Route   `toml:"route"`
	Smarthost                Smarthost `toml:"smarthost"`
	// TLSPolicies are the per-destination TLS policies (issue 14): the
	// first source in the precedence, before routes, DANE, MTA-STS and
	// delivery.tls.
	TLSPolicies []TLSPolicy `toml:"tls_policy"`
	CAFile      string      `toml:"ca_file"` // PEM roots added to the system's, for verify, DANE-less PKIX and MTA-STS fetches; "" = system roots only
	MTASTS      bool        `toml:"mta_sts"` // look up and honour MTA-STS policies (RFC 8461)
	// MTASTSPort is the port policies are fetched from: 443 (RFC 8461
	// §3.3) except in a lab whose DNS is a loopback resolver the
	// operator runs (validated), where policy servers may listen
	// elsewhere, as delivery.port lets MX hosts.
	MTASTSPort int `toml:"mta_sts_port"`

	// CAPEM is read from CAFile at load (never decoded from TOML).
	CAPEM []byte `toml:"-" reload:"ca_file"`
}

// TLSPolicy is one [[delivery.tls_policy]] entry: the TLS mode for mail
// to one recipient domain (exact match).
type TLSPolicy struct {
	Domain string `toml:"domain"`
	Mode   string `toml:"mode"`
}

// TLSModes is the one value set of outbound TLS modes (delivery.tls,
// tls_policy, routes, smarthost), with the pre-issue-14 aliases.
var TLSModes = []string{"none", "may", "encrypt", "verify", "dane", "mta-sts", "opportunistic", "require"}

// CanonicalTLSMode maps the aliases opportunistic and require onto may
// and encrypt.
func CanonicalTLSMode(m string) string {
	switch m {
	case "opportunistic":
		return "may"
	case "require":
		return "encrypt"
	}
	return m
}

// RootCAs is the pool outbound TLS verifies against: the system roots
// plus delivery.ca_file's certificates; nil when ca_file is not set (the
// system roots alone).
func (d Delivery) RootCAs() (*x509.CertPool, error) {
	if len(d.CAPEM) == 0 {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(d.CAPEM) {
		return nil, fmt.Errorf("no PEM certificate in %s", d.CAFile)
	}
	return pool, nil
}

// Route sends one recipient domain (exact match) to a fixed host.
type Route struct {
	Domain string `toml:"domain"`
	Host   string `toml:"host"` // host:port
	TLS    string `toml:"tls"`  // "" = [delivery].tls (resolved at load)
}

// Smarthost, when Host is set, receives all mail not matched by a route.
type Smarthost struct {
	Host         string `toml:"host"`
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
	TLS          string `toml:"tls"` // "" = [delivery].tls (resolved at load)

	// Password is read from PasswordFile at load. It is never decoded from
	// TOML nor printed by String/Redacted. A reload reads it again when
	// password_file is reloadable (the reload tag names its source key).
	Password string `toml:"-" reload:"password_file"`
}

// Policy configures classification reactions and per-destination limits.
type Policy struct {
	RetryBase             Duration      `toml:"retry_base"`
	RetryMax              Duration      `toml:"retry_max"`
	GreylistDefault       Duration      `toml:"greylist_default"`
	GreylistMargin        Duration      `toml:"greylist_margin"`
	MaxHint               Duration      `toml:"max_hint"`
	MaxConcurrency        int           `toml:"max_concurrency"`
	MinConcurrency        int           `toml:"min_concurrency"`
	InitialConcurrency    int           `toml:"initial_concurrency"`
	Rate                  Rate          `toml:"rate"`
	MinRate               Rate          `toml:"min_rate"`
	GroupBy               string        `toml:"group_by"` // domain | mx
	DecreaseWindow        Duration      `toml:"decrease_window"`
	ThrottlePause         Duration      `toml:"throttle_pause"` // "" = retry_base (resolved at load)
	IncreaseAfter         int           `toml:"increase_after"`
	AlarmShare            float64       `toml:"alarm_share"`
	AlarmWindow           Duration      `toml:"alarm_window"`
	AlarmMinDestinations  int           `toml:"alarm_min_destinations"`
	SuppressOnUnknownUser bool          `toml:"suppress_on_unknown_user"`
	SuppressAfterExpiries int           `toml:"suppress_after_expiries"`
	Destinations          []Destination `toml:"destination"`
	Rules                 []Rule        `toml:"rule"`
	Providers             []Provider    `toml:"provider"`
}

// Destination overrides limits for a domain or a provider name.
type Destination struct {
	Match          string `toml:"match"`
	MaxConcurrency int    `toml:"max_concurrency"`
	Rate           Rate   `toml:"rate"`
}

// Rule is an operator classification rule; it wins over built-in rules.
type Rule struct {
	Match string   `toml:"match"` // regexp on the reply line
	Class string   `toml:"class"`
	For   Duration `toml:"for"`   // required for suspend
	Scope string   `toml:"scope"` // "" | connections | rate | both
}

// Provider adds MX host suffixes that group domains under one name.
type Provider struct {
	Name     string   `toml:"name"`
	Suffixes []string `toml:"suffixes"`
}

// Auth configures SPF/DKIM/DMARC checking and DKIM signing.
type Auth struct {
	Mode             string   `toml:"mode"` // off | warn | enforce
	DNSTimeout       Duration `toml:"dns_timeout"`
	CacheTTL         Duration `toml:"cache_ttl"`
	ResolverCooldown Duration `toml:"resolver_cooldown"`
	DKIM             []DKIM   `toml:"dkim"`
}

// DKIM is one signing key.
type DKIM struct {
	Domain     string `toml:"domain"`
	Selector   string `toml:"selector"`
	KeyFile    string `toml:"key_file"`
	Subdomains bool   `toml:"subdomains"`
}

// Lint configures the content lint at acceptance (issue 16, package
// lint and relay/lintcheck).
type Lint struct {
	Mode         string   `toml:"mode"`          // off | warn | enforce
	Disabled     []string `toml:"disabled"`      // finding IDs switched off (lint.IDs)
	Shorteners   []string `toml:"shorteners"`    // extra URL shortener domains
	BulkPerDay   int      `toml:"bulk_per_day"`  // a sender domain past this many messages a day is a bulk sender
	WarnInterval Duration `toml:"warn_interval"` // a finding is logged once per sender domain per this
	MaxBytes     Size     `toml:"max_bytes"`     // of each message read by lint
	// WarnBudget is the share of the machine's CPU that warn mode may
	// spend on lint; past it a sample is linted (1 = every message).
	WarnBudget Percent `toml:"warn_budget"`
}

// Events configures the delivery events (issue 13): the outbox kept in
// the queue file and the sinks that read it. Events are stored only when
// a sink is configured (File or a Webhook).
type Events struct {
	Retention Duration  `toml:"retention"` // delivered events are kept this long, for replay
	MaxBytes  Size      `toml:"max_bytes"` // outbox cap; past it the oldest events are dropped
	File      string    `toml:"file"`      // JSON-lines sink: a path, "-" = stdout, "" = none
	Webhooks  []Webhook `toml:"webhook"`
}

// Webhook is one HTTP endpoint that receives signed JSON POSTs.
type Webhook struct {
	URL        string   `toml:"url"`
	SecretFile string   `toml:"secret_file"`
	Events     []string `toml:"events"` // event types to send; empty = all
	Batch      int      `toml:"batch"`  // max events per POST
	Timeout    Duration `toml:"timeout"`

	// Secret is read from SecretFile at load; never decoded from TOML
	// nor printed.
	Secret string `toml:"-" reload:"secret_file"`
}

// EventsOn reports whether any event sink is configured, so that events
// are stored.
func (e *Events) EventsOn() bool { return e.File != "" || len(e.Webhooks) > 0 }

// Node is the node's name in its cluster: node_id, or the machine's
// hostname when node_id is empty (the default), or "sluice" when the
// hostname cannot be read.
func (c Cluster) Node() string {
	if c.NodeID != "" {
		return c.NodeID
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "sluice"
}

// TLSRPT is SMTP TLS Reporting (RFC 8460, issue 14): daily aggregate
// reports of the outbound TLS outcomes to the domains that ask for them.
type TLSRPT struct {
	Enabled          bool     `toml:"enabled"`           // off until set: reports name the operator's organisation
	OrganizationName string   `toml:"organization_name"` // the report's "organization-name" (RFC 8460 §4.4)
	ContactInfo      string   `toml:"contact_info"`      // the report's "contact-info": an address (RFC 8460 §4.4: addr-spec)
	From             string   `toml:"from"`              // From and envelope sender of mailed reports
	Submitter        string   `toml:"submitter"`         // the submitting domain (§5.3); "" = contact_info's domain (resolved at load)
	Interval         Duration `toml:"interval"`          // the reporting period; divides 24h (§4.1: a UTC day)
}

// DefaultSubmitter is the submitter when tlsrpt.submitter is empty: the
// domain of contact_info, which RFC 8460 §5.3 requires it to match.
func (r TLSRPT) DefaultSubmitter() string {
	if at := strings.LastIndexByte(r.ContactInfo, '@'); at >= 0 {
		return strings.ToLower(r.ContactInfo[at+1:])
	}
	return ""
}
