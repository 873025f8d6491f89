package admin

import (
	"fmt"
	"sort"
	"time"

	"golang.org/x/time/rate"

	"sluice/policy"
	"sluice/queue"
)

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// messageOf converts a stored message; history only for `queue show`.
func messageOf(m *queue.Message, history bool) Message {
	out := Message{ID: m.ID, From: m.From, Received: m.Received.UTC(), Size: m.Size, Client: m.ClientAddr, Helo: m.Helo, User: m.User,
		Done: timePtr(m.Done), Recipients: make([]Recipient, 0, len(m.Recipients))}
	for _, r := range m.Recipients {
		rr := Recipient{Addr: r.Addr, Domain: r.Domain, State: string(r.State), Attempts: r.Attempts, LastReply: r.LastReply, LastClass: r.LastClass}
		if r.State == queue.StateQueued {
			rr.NextAttempt = timePtr(r.NextAttempt)
		}
		if history {
			for _, a := range r.History {
				rr.History = append(rr.History, Attempt{At: a.At.UTC(), Relay: a.Relay, Reply: a.Reply, Class: a.Class, Status: a.Status})
			}
		}
		out.Recipients = append(out.Recipients, rr)
	}
	return out
}

// SummaryBuckets are the qshape age buckets: each twice the last, so
// that both a fresh burst and a week-old backlog read at a glance.
var SummaryBuckets = []string{"0-5m", "5-10m", "10-20m", "20-40m", "40-80m", "80-160m", "160m+"}

func ageBucket(age time.Duration) int {
	limit := 5 * time.Minute
	for i := 0; i < len(SummaryBuckets)-1; i++ {
		if age < limit {
			return i
		}
		if i > 0 {
			limit *= 2
		} else {
			limit = 10 * time.Minute
		}
	}
	return len(SummaryBuckets) - 1
}

// summaryBounds are the upper bounds of SummaryBuckets but the last.
var summaryBounds = []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, 80 * time.Minute, 160 * time.Minute}

// summary counts open recipients by domain and message age, like
// qshape, from the per-domain counters and arrival histograms the queue
// keeps in every transaction: O(domains), whatever the number of
// messages, finished ones included. A message's age counts from the
// start of its minute of arrival.
func (s *Server) summary() (Summary, error) {
	counts, err := s.o.Queue.DomainCounts(s.o.Now(), summaryBounds)
	if err != nil {
		return Summary{}, err
	}
	return shape(counts), nil
}

func shape(counts []queue.DomainCount) Summary {
	total := SummaryRow{Domain: "TOTAL", Counts: make([]int, len(SummaryBuckets))}
	out := Summary{Buckets: SummaryBuckets, Rows: make([]SummaryRow, 0, len(counts)), Total: total}
	for _, c := range counts {
		if c.Open() == 0 {
			continue
		}
		row := SummaryRow{Domain: c.Domain, Total: c.Open(), Counts: c.Ages}
		for i, n := range c.Ages {
			out.Total.Counts[i] += n
		}
		out.Total.Total += row.Total
		out.Rows = append(out.Rows, row)
	}
	sort.Slice(out.Rows, func(i, j int) bool {
		if out.Rows[i].Total != out.Rows[j].Total {
			return out.Rows[i].Total > out.Rows[j].Total
		}
		return out.Rows[i].Domain < out.Rows[j].Domain
	})
	return out
}

// destOfDomain maps a recipient domain to its destination (see
// Telemetry.destOfDomain).
func (s *Server) destOfDomain(domain string) string { return s.o.Telemetry.destOfDomain(domain) }

// destQueue is the open mail of one destination.
type destQueue struct{ open, held int }

// queueByDest sums the per-domain counters by destination: O(domains).
func (s *Server) queueByDest() (map[string]destQueue, error) {
	counts, err := s.o.Queue.DomainCounts(s.o.Now(), nil)
	if err != nil {
		return nil, err
	}
	out := map[string]destQueue{}
	for _, c := range counts {
		if c.Open() == 0 {
			continue
		}
		name := s.destOfDomain(c.Domain)
		q := out[name]
		q.open += c.Open()
		q.held += c.States[queue.StateHeld]
		out[name] = q
	}
	return out, nil
}

func (s *Server) destinationOf(st policy.DestinationState) Destination {
	d := Destination{
		Name: st.Name, State: st.State, PausedUntil: timePtr(st.PausedUntil),
		Concurrency: st.Concurrency, MaxConcurrency: st.MaxConcurrency, Active: st.Active,
		Rate: rateOf(st.Rate), MaxRate: rateOf(st.MaxRate), MsgsPerConn: st.MsgsPerConn,
		GreylistWindow: st.GreylistWindow.String(), LastHour: map[string]int{},
		Replies421: s.o.Telemetry.History.Count421(st.Name, time.Hour),
		LastReply:  st.LastReply, LastChange: timePtr(st.LastChange),
	}
	for c, n := range st.Counts {
		if n > 0 {
			d.LastHour[string(c)] = n
		}
	}
	return d
}

func rateOf(r rate.Limit) float64 {
	if r == rate.Inf || r < 0 {
		return 0
	}
	return float64(r)
}

func (s *Server) alarm() Alarm {
	on, why, since := s.o.Policy.Alarm()
	if !on {
		// In a cluster, an alarm another node raised is this
		// sender's too (the same IPs, content and authentication).
		if s.o.Cluster != nil {
			if a, ok := s.o.Cluster.ClusterAlarm(); ok {
				return Alarm{Active: true, Reason: "node " + a.Node + ": " + a.Reason, Since: timePtr(a.Since)}
			}
		}
		return Alarm{}
	}
	return Alarm{Active: true, Reason: why, Since: timePtr(since)}
}

// domains lists the destinations the policy holds in memory, and those
// it does not but that have open mail (state "idle": no attempt within
// the idle period and nothing in force, so the configured limits apply),
// each with its open recipients. O(destinations + domains).
func (s *Server) domains() (Domains, error) {
	byDest, err := s.queueByDest()
	if err != nil {
		return Domains{}, err
	}
	snap := s.o.Policy.Snapshot()
	out := Domains{Alarm: s.alarm(), Destinations: make([]Destination, 0, len(snap))}
	for _, st := range snap {
		d := s.destinationOf(st)
		d.Open, d.Held = byDest[st.Name].open, byDest[st.Name].held
		delete(byDest, st.Name)
		out.Destinations = append(out.Destinations, d)
	}
	for name, q := range byDest {
		out.Destinations = append(out.Destinations, Destination{Name: name, State: stateIdle, LastHour: map[string]int{},
			Replies421: s.o.Telemetry.History.Count421(name, time.Hour), Open: q.open, Held: q.held})
	}
	sort.Slice(out.Destinations, func(i, j int) bool { return out.Destinations[i].Name < out.Destinations[j].Name })
	if s.o.Lint != nil {
		r := s.o.Lint()
		out.Lint = &r
	}
	return out, nil
}

// stateIdle is the state `domains` shows for a destination with open
// mail of which the policy keeps nothing in memory.
const stateIdle = "idle"

// status is up by construction (we are answering); ready when the queue
// answers and the daemon's own check passes.
func (s *Server) status() Status {
	now := s.o.Now()
	st := Status{Up: true, Ready: true, Version: s.o.Version, Started: s.o.Started.UTC(),
		UptimeSeconds: now.Sub(s.o.Started).Round(time.Second).Seconds(), Queue: map[string]int{}, Alarm: s.alarm()}
	counts, err := s.o.Queue.Counts()
	if err != nil {
		st.Ready, st.Reason = false, fmt.Sprintf("queue: %v", err)
	}
	for k, v := range counts {
		st.Queue[string(k)] = v
	}
	if old, ok, err := s.o.Queue.Oldest(); err == nil && ok {
		st.Oldest = timePtr(old)
	}
	if s.o.Config != nil {
		cs := s.o.Config()
		st.Config = &cs
	}
	st.Events = s.eventsStatus()
	if st.Ready && s.o.Ready != nil {
		if err := s.o.Ready(); err != nil {
			st.Ready, st.Reason = false, err.Error()
		}
	}
	return st
}
