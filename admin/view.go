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

// summary counts open recipients by domain and message age. It scans
// the queue, like qshape; it is an operator query, off the hot path.
func (s *Server) summary() (Summary, error) {
	msgs, err := s.o.Queue.List(queue.Filter{})
	if err != nil {
		return Summary{}, err
	}
	return shape(msgs, s.o.Now()), nil
}

func shape(msgs []queue.Message, now time.Time) Summary {
	rows := map[string]*SummaryRow{}
	total := SummaryRow{Domain: "TOTAL", Counts: make([]int, len(SummaryBuckets))}
	for _, m := range msgs {
		b := ageBucket(now.Sub(m.Received))
		for _, r := range m.Recipients {
			if !r.State.Open() {
				continue
			}
			row := rows[r.Domain]
			if row == nil {
				row = &SummaryRow{Domain: r.Domain, Counts: make([]int, len(SummaryBuckets))}
				rows[r.Domain] = row
			}
			row.Counts[b]++
			row.Total++
			total.Counts[b]++
			total.Total++
		}
	}
	out := Summary{Buckets: SummaryBuckets, Rows: make([]SummaryRow, 0, len(rows)), Total: total}
	for _, r := range rows {
		out.Rows = append(out.Rows, *r)
	}
	sort.Slice(out.Rows, func(i, j int) bool {
		if out.Rows[i].Total != out.Rows[j].Total {
			return out.Rows[i].Total > out.Rows[j].Total
		}
		return out.Rows[i].Domain < out.Rows[j].Domain
	})
	return out
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
		return Alarm{}
	}
	return Alarm{Active: true, Reason: why, Since: timePtr(since)}
}

func (s *Server) domains() Domains {
	snap := s.o.Policy.Snapshot()
	out := Domains{Alarm: s.alarm(), Destinations: make([]Destination, 0, len(snap))}
	for _, st := range snap {
		out.Destinations = append(out.Destinations, s.destinationOf(st))
	}
	return out
}

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
	if st.Ready && s.o.Ready != nil {
		if err := s.o.Ready(); err != nil {
			st.Ready, st.Reason = false, err.Error()
		}
	}
	return st
}
