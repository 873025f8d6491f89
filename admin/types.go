package admin

import (
	"time"

	"sluice/admin/timeline"
	"sluice/events"
	"sluice/relay/lintcheck"
)

// The types below are the JSON contract of the /v1 API. Scripts read
// them through `sluice ... --json`, so field names only ever grow.

// Attempt is one delivery try of one recipient.
type Attempt struct {
	At     time.Time `json:"at"`
	Relay  string    `json:"relay,omitempty"`
	Reply  string    `json:"reply"`
	Class  string    `json:"class"`
	Status string    `json:"status"`
}

// Recipient is one envelope recipient and its delivery state.
type Recipient struct {
	Addr        string     `json:"addr"`
	Domain      string     `json:"domain"`
	State       string     `json:"state"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	Attempts    int        `json:"attempts"`
	LastReply   string     `json:"last_reply,omitempty"`
	LastClass   string     `json:"last_class,omitempty"`
	History     []Attempt  `json:"history,omitempty"`
}

// Message is a queued (or recently finished) message.
type Message struct {
	ID         string      `json:"id"`
	From       string      `json:"from"`
	Received   time.Time   `json:"received"`
	Size       int64       `json:"size"`
	Client     string      `json:"client,omitempty"`
	Helo       string      `json:"helo,omitempty"`
	User       string      `json:"user,omitempty"`
	Done       *time.Time  `json:"done,omitempty"`
	Recipients []Recipient `json:"recipients"`
}

// Summary is the qshape view: open recipients per destination domain and
// age bucket (the age of the message).
type Summary struct {
	Buckets []string     `json:"buckets"`
	Rows    []SummaryRow `json:"rows"`
	Total   SummaryRow   `json:"total"`
}

// SummaryRow is one domain of the summary; Counts follows Buckets.
type SummaryRow struct {
	Domain string `json:"domain"`
	Total  int    `json:"total"`
	Counts []int  `json:"counts"`
}

// Destination is the policy state of one destination.
type Destination struct {
	Name           string         `json:"name"`
	State          string         `json:"state"`
	PausedUntil    *time.Time     `json:"paused_until,omitempty"`
	Concurrency    int            `json:"concurrency"`
	MaxConcurrency int            `json:"max_concurrency"`
	Active         int            `json:"active"`
	Rate           float64        `json:"rate"`     // messages/s; 0 = unlimited
	MaxRate        float64        `json:"max_rate"` // messages/s; 0 = unlimited
	MsgsPerConn    int            `json:"msgs_per_conn"`
	GreylistWindow string         `json:"greylist_window"`
	LastHour       map[string]int `json:"last_hour"` // replies by class
	Replies421     int            `json:"replies_421_last_hour"`
	LastReply      string         `json:"last_reply,omitempty"`
	LastChange     *time.Time     `json:"last_change,omitempty"`
	// Open counts the recipients not finished yet (queued, in flight or
	// held) at the recipient domains grouped into the destination; Held
	// those of them held.
	Open int `json:"open"`
	Held int `json:"held"`
	// Cluster is the destination across the cluster (cluster mode).
	Cluster *ClusterShare `json:"cluster,omitempty"`
}

// Alarm is the sender-wide alarm.
type Alarm struct {
	Active bool       `json:"active"`
	Reason string     `json:"reason,omitempty"`
	Since  *time.Time `json:"since,omitempty"`
}

// Domains is the reply of GET /v1/domains.
type Domains struct {
	Alarm        Alarm         `json:"alarm"`
	Destinations []Destination `json:"destinations"`
	// Lint is the content lint findings per sender domain over the last
	// day (issue 16): the sender side of a spike of 421s. Absent when
	// lint is not wired.
	Lint *lintcheck.Report `json:"lint,omitempty"`
}

// DomainDetail is the reply of GET /v1/domains/{name}.
type DomainDetail struct {
	Destination Destination `json:"destination"`
	Domains     []string    `json:"domains,omitempty"` // recipient domains seen grouped into it
	Recent      []Event     `json:"recent"`
}

// Event is one recent delivery attempt at a destination.
type Event struct {
	At     time.Time `json:"at"`
	Domain string    `json:"domain"`
	Class  string    `json:"class"`
	Status string    `json:"status"`
	Reply  string    `json:"reply"`
}

// Status is the reply of GET /v1/status and of /readyz.
type Status struct {
	Up            bool           `json:"up"`
	Ready         bool           `json:"ready"`
	Reason        string         `json:"reason,omitempty"` // why not ready
	Version       string         `json:"version"`
	Started       time.Time      `json:"started"`
	UptimeSeconds float64        `json:"uptime_seconds"`
	Queue         map[string]int `json:"queue"`
	Oldest        *time.Time     `json:"oldest,omitempty"`
	Alarm         Alarm          `json:"alarm"`
	Config        *ConfigStatus  `json:"config,omitempty"`
	// Events: the outbox and its sinks, with the drop alarm (nil when
	// no sink is configured and nothing was ever dropped).
	Events *events.Status `json:"events,omitempty"`
}

// Selection names the messages an operator action applies to: IDs, or
// every message with an open recipient at Domain.
type Selection struct {
	IDs    []string `json:"ids,omitempty"`
	Domain string   `json:"domain,omitempty"`
}

// FlushRequest is the body of POST /v1/queue/flush.
type FlushRequest struct {
	Domain string `json:"domain,omitempty"`
	Force  bool   `json:"force,omitempty"`
}

// Result is the reply of an operator action.
type Result struct {
	Changed int      `json:"changed"`
	Skipped []string `json:"skipped,omitempty"` // e.g. paused destinations a flush left alone
}

// LimitsRequest is the body of PUT /v1/limits/{name}. Nil fields keep
// the current maximum.
type LimitsRequest struct {
	MaxConcurrency *int    `json:"max_concurrency,omitempty"`
	Rate           *string `json:"rate,omitempty"` // "N/s", "N/m", "N/h"; "" = unlimited
}

// Suppression is one suppressed address.
type Suppression struct {
	Addr   string    `json:"addr"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// Chart is the 421/deferral history for the dashboard.
type Chart struct {
	BucketSeconds int      `json:"bucket_seconds"`
	Start         int64    `json:"start"` // unix seconds of the first bucket
	Series        []Series `json:"series"`
	// HourOfDay sums the last HourOfDayDays days by hour of day (UTC), so
	// that a spike at a fixed hour stands out.
	HourOfDayDays int      `json:"hour_of_day_days"`
	HourOfDay     []Series `json:"hour_of_day"`
}

// Series is one destination's counts per bucket.
type Series struct {
	Destination string `json:"destination"`
	Replies421  []int  `json:"replies_421"`
	Deferred    []int  `json:"deferred"`
}

// Dashboard is everything the web page shows, in one read-only reply.
type Dashboard struct {
	Status  Status  `json:"status"`
	Summary Summary `json:"summary"`
	Domains Domains `json:"domains"`
	Chart   Chart   `json:"chart"`
	// Timeline is the last hour of the busiest destinations' control
	// loop (ChartBusiest of them) and of the one the request names with
	// ?timeline=NAME, from in-memory rings.
	Timeline timeline.Chart `json:"timeline"`
}

// apiError is the body of every non-2xx reply.
type apiError struct {
	Error string `json:"error"`
}
