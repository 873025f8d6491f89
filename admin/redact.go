package admin

import (
	"regexp"

	"sluice/relay/lintcheck"
)

// mailAddr matches a mail address in free text (a reply line, an alarm
// reason): a local part, quoted or not, then @ and a domain.
var mailAddr = regexp.MustCompile(`(?:"[^"]*"|[^\s<>()\[\]:;@,"]+)@([A-Za-z0-9.-]+|\[[^\]\s]*\])`)

// redactAddrs cuts every mail address in s to its domain: "…@domain".
func redactAddrs(s string) string {
	return mailAddr.ReplaceAllString(s, "…@$1")
}

// public is the dashboard as the unauthenticated HTTP listener serves
// it: every free text that may quote an address is redacted; the rest
// (counts, destination and domain names, states) carries none.
func (d Dashboard) public() Dashboard {
	d.Status = d.Status.public()
	d.Domains.Alarm.Reason = redactAddrs(d.Domains.Alarm.Reason)
	dests := make([]Destination, len(d.Domains.Destinations))
	for i, x := range d.Domains.Destinations {
		x.LastReply = redactAddrs(x.LastReply)
		dests[i] = x
	}
	d.Domains.Destinations = dests
	if l := d.Domains.Lint; l != nil {
		// Counts per sender domain and finding only: the evidence quotes
		// the message (a From display name, a link with its tracking
		// token) and is for the admin API.
		r := *l
		r.Senders = make([]lintcheck.Sender, len(l.Senders))
		for i, s := range l.Senders {
			fs := make([]lintcheck.SenderFinding, len(s.Findings))
			for j, f := range s.Findings {
				f.Evidence = ""
				fs[j] = f
			}
			s.Findings = fs
			r.Senders[i] = s
		}
		d.Domains.Lint = &r
	}
	return d
}

// public is the status as /readyz serves it, unauthenticated.
func (s Status) public() Status {
	s.Reason = redactAddrs(s.Reason)
	s.Alarm.Reason = redactAddrs(s.Alarm.Reason)
	if s.Config != nil {
		// The hash says which file runs; the path and a refused file's
		// error (which may quote a value) are for the admin API only.
		c := *s.Config
		c.File = ""
		if c.LastReload != nil {
			lr := *c.LastReload
			lr.Error = ""
			c.LastReload = &lr
		}
		s.Config = &c
	}
	if s.Events != nil {
		// Counts and the alarm only: sink URLs and their errors are
		// for the admin API.
		e := *s.Events
		e.Sinks = nil
		s.Events = &e
	}
	return s
}
