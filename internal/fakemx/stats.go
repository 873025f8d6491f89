package fakemx

import (
	"maps"
	"sort"
	"time"
)

// Stats is a snapshot of what the server did since Start.
type Stats struct {
	Connections     int `json:"connections"`      // TCP connections accepted, refused or not
	Sessions        int `json:"sessions"`         // sessions admitted with a 220 greeting
	TLSSessions     int `json:"tls_sessions"`     // successful STARTTLS handshakes
	Refused421      int `json:"refused_421"`      // every 421 reply sent, whatever the reason
	SessionRefusals int `json:"session_refusals"` // 421 at greeting: over MaxSessions
	RateRefusals    int `json:"rate_refusals"`    // 421 at MAIL: over RatePerWindow
	OutageRefusals  int `json:"outage_refusals"`  // 421 at greeting: inside an outage window
	PenaltyRefusals int `json:"penalty_refusals"` // refused at greeting or MAIL: inside the penalty box
	PenaltyBlocks   int `json:"penalty_blocks"`   // times the penalty box shut
	MailboxRefusals int `json:"mailbox_refusals"` // RCPT refused: the mailbox's limit per window
	GreylistReplies int `json:"greylist_replies"` // RCPT refused by greylisting
	ScriptedReplies int `json:"scripted_replies"` // replies sent by a Script rule
	ExtraReplies    int `json:"extra_replies"`    // unrequested replies sent after a scripted one (Rule.Extra)
	RequireTLSMails int `json:"requiretls_mails"` // MAIL commands with REQUIRETLS (RFC 8689) over TLS

	Delivered       int `json:"delivered"`         // messages accepted at end of DATA
	DeliveredRcpts  int `json:"delivered_rcpts"`   // recipients of those messages
	Duplicates      int `json:"duplicates"`        // delivered messages whose Message-ID had been delivered before
	NoMessageID     int `json:"no_message_id"`     // delivered messages without a Message-ID header
	BareLineEndings int `json:"bare_line_endings"` // delivered messages with a lone CR or LF in DATA

	MaxConcurrent int            `json:"max_concurrent"` // peak of concurrent admitted sessions
	EHLONames     map[string]int `json:"ehlo_names"`     // EHLO/HELO argument -> times seen

	// Recipients is keyed by the lowercased recipient address.
	Recipients    map[string]RecipientStats `json:"recipients"`
	FirstDelivery time.Time                 `json:"first_delivery"`
	LastDelivery  time.Time                 `json:"last_delivery"`
}

// RecipientStats tells the story of one recipient address.
type RecipientStats struct {
	FirstAttempt    time.Time `json:"first_attempt"` // first RCPT naming it, accepted or not
	Delivered       time.Time `json:"delivered"`     // first end of DATA that accepted it; zero if never
	Deliveries      int       `json:"deliveries"`
	GreylistReplies int       `json:"greylist_replies"`
}

func newStats() Stats {
	return Stats{EHLONames: map[string]int{}, Recipients: map[string]RecipientStats{}}
}

func (st Stats) clone() Stats {
	st.EHLONames = maps.Clone(st.EHLONames)
	st.Recipients = maps.Clone(st.Recipients)
	return st
}

// Stats returns a snapshot; the maps are copies.
func (s *Server) Stats() Stats { return s.m.Stats() }

// MessageIDs returns Message-ID -> times delivered.
func (s *Server) MessageIDs() map[string]int { return s.m.MessageIDs() }

// Recipient reports the first RCPT attempt and the first delivery of rcpt,
// and how many greylist replies it got. ok is false if it was never seen.
func (s *Server) Recipient(rcpt string) (firstAttempt, delivered time.Time, greylistReplies int, ok bool) {
	return s.m.Recipient(rcpt)
}

// Received returns the raw bodies delivered so far (dot-unstuffed, line
// ends untouched) when Options.KeepBodies is set; nil otherwise.
func (s *Server) Received() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]byte, len(s.bodies))
	copy(out, s.bodies)
	return out
}

// LagSummary describes how long delivered recipients waited beyond the
// greylisting window.
type LagSummary struct {
	Recipients         int           `json:"recipients"` // delivered recipients
	Median             time.Duration `json:"-"`
	Max                time.Duration `json:"-"`
	MedianSeconds      float64       `json:"median_lag_s"`
	MaxSeconds         float64       `json:"max_lag_s"`
	RepliesPerRcpt     float64       `json:"greylist_replies_per_rcpt"`
	MaxRepliesPerRcpt  int           `json:"max_greylist_replies"`
	UndeliveredRcpts   int           `json:"undelivered_rcpts"`
	TotalGreylistReply int           `json:"greylist_replies"`
}

// GreylistLag computes, over the recipients that were delivered, the lag
// Delivered - FirstAttempt - window (never negative): the time a sender
// lost after the greylisting window had already passed.
func (st Stats) GreylistLag(window time.Duration) LagSummary {
	var sum LagSummary
	var lags []time.Duration
	for _, r := range st.Recipients {
		sum.TotalGreylistReply += r.GreylistReplies
		if r.GreylistReplies > sum.MaxRepliesPerRcpt {
			sum.MaxRepliesPerRcpt = r.GreylistReplies
		}
		if r.Delivered.IsZero() {
			sum.UndeliveredRcpts++
			continue
		}
		lags = append(lags, max(0, r.Delivered.Sub(r.FirstAttempt)-window))
	}
	sum.Recipients = len(lags)
	if n := len(st.Recipients); n > 0 {
		sum.RepliesPerRcpt = float64(sum.TotalGreylistReply) / float64(n)
	}
	if len(lags) > 0 {
		sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
		mid := len(lags) / 2
		sum.Median = lags[mid]
		if len(lags)%2 == 0 {
			sum.Median = (lags[mid-1] + lags[mid]) / 2
		}
		sum.Max = lags[len(lags)-1]
		sum.MedianSeconds = sum.Median.Seconds()
		sum.MaxSeconds = sum.Max.Seconds()
	}
	return sum
}
