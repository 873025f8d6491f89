package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"sluice/admin"
	"sluice/internal/escape"
	"sluice/relay/lintcheck"
)

// The renderers print for humans: aligned columns, relative ages, UTC
// times. They take now so that golden files stay stable. Every string that
// came from a client or a remote server (addresses, HELO names, user names,
// reply texts, reasons, relay and destination names) goes through esc on
// its way out, and printJSON escapes what encoding/json leaves raw, so
// nothing in the queue can drive the operator's terminal.

// esc is the one escaping function of the CLI output (internal/escape).
func esc(s string) string { return escape.Text(s) }

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func printJSON(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(escape.JSON(b.Bytes()))
	return err
}

const timeFmt = "2006-01-02 15:04:05Z"

// age prints a duration the way qshape and mailq readers think: 42s,
// 17m, 3h05m, 2d04h.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "in " + age(-d)
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

func size(n int64) string {
	switch {
	case n < 1024:
		return strconv.FormatInt(n, 10)
	case n < 1024*1024:
		return fmt.Sprintf("%.1fK", float64(n)/1024)
	default:
		return fmt.Sprintf("%.1fM", float64(n)/(1024*1024))
	}
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sender(s string) string {
	if s == "" {
		return "<>"
	}
	return esc(s)
}

func renderList(w io.Writer, msgs []admin.Message, now time.Time) {
	p := newListPrinter(w, now)
	for _, m := range msgs {
		_ = p.add(m)
	}
	_ = p.end(admin.ListEnd{Messages: len(msgs)})
}

// listOutput prints a listing as it streams in.
type listOutput interface {
	add(admin.Message) error
	end(admin.ListEnd) error
}

// listBlock is how many messages the table holds before it is printed:
// a listing of any length streams out in blocks (the columns are
// aligned within each block).
const listBlock = 1000

// listPrinter is the table of `queue list`.
type listPrinter struct {
	w           io.Writer
	tw          *tabwriter.Writer
	now         time.Time
	msgs, rcpts int
	inBlock     int
}

func newListPrinter(w io.Writer, now time.Time) *listPrinter {
	return &listPrinter{w: w, tw: table(w), now: now}
}

func (p *listPrinter) add(m admin.Message) error {
	if p.msgs == 0 {
		fmt.Fprintln(p.tw, "ID\tAGE\tSIZE\tFROM\tRECIPIENT\tSTATE\tTRIES\tNEXT\tLAST REPLY")
	}
	for i, r := range m.Recipients {
		id, ag, sz, from := "", "", "", ""
		if i == 0 {
			id, ag, sz, from = esc(m.ID), age(p.now.Sub(m.Received)), size(m.Size), sender(m.From)
		}
		next := "-"
		if r.NextAttempt != nil {
			next = age(r.NextAttempt.Sub(p.now))
			if !r.NextAttempt.After(p.now) {
				next = "now"
			}
		}
		fmt.Fprintf(p.tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", id, ag, sz, from, esc(r.Addr), esc(r.State), r.Attempts, next, clip(orDash(esc(r.LastReply)), 60))
		p.rcpts++
	}
	p.msgs++
	if p.inBlock++; p.inBlock == listBlock {
		p.inBlock = 0
		return p.tw.Flush()
	}
	return nil
}

func (p *listPrinter) end(e admin.ListEnd) error {
	if p.msgs == 0 {
		_, err := fmt.Fprintln(p.w, "queue is empty (no matching message)")
		return err
	}
	if err := p.tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(p.w, "-- %d messages, %d recipients\n", p.msgs, p.rcpts)
	if e.More {
		fmt.Fprintf(p.w, "-- more: add --after %s for the next page\n", esc(e.Next))
	}
	return nil
}

// jsonArray prints a streamed listing as the JSON array printJSON would
// print for the whole list, element by element.
type jsonArray struct {
	w io.Writer
	n int
}

func (j *jsonArray) add(m admin.Message) error {
	b, err := json.MarshalIndent(m, "  ", "  ")
	if err != nil {
		return err
	}
	sep := ",\n  "
	if j.n == 0 {
		sep = "[\n  "
	}
	j.n++
	_, err = j.w.Write(escape.JSON(append([]byte(sep), b...)))
	return err
}

func (j *jsonArray) end(admin.ListEnd) error {
	if j.n == 0 {
		_, err := io.WriteString(j.w, "[]\n")
		return err
	}
	_, err := io.WriteString(j.w, "\n]\n")
	return err
}

func renderShow(w io.Writer, m admin.Message, now time.Time) {
	tw := table(w)
	fmt.Fprintf(tw, "id:\t%s\n", esc(m.ID))
	fmt.Fprintf(tw, "from:\t%s\n", sender(m.From))
	fmt.Fprintf(tw, "received:\t%s (%s ago)\n", m.Received.Format(timeFmt), age(now.Sub(m.Received)))
	fmt.Fprintf(tw, "size:\t%s bytes\n", strconv.FormatInt(m.Size, 10))
	fmt.Fprintf(tw, "client:\t%s helo=%s user=%s\n", orDash(esc(m.Client)), orDash(esc(m.Helo)), orDash(esc(m.User)))
	if m.Done != nil {
		fmt.Fprintf(tw, "done:\t%s\n", m.Done.Format(timeFmt))
	}
	tw.Flush()
	for _, r := range m.Recipients {
		fmt.Fprintf(w, "\nrecipient %s: %s, %d attempts", esc(r.Addr), esc(r.State), r.Attempts)
		if r.NextAttempt != nil {
			fmt.Fprintf(w, ", next %s", r.NextAttempt.Format(timeFmt))
		}
		fmt.Fprintln(w)
		if len(r.History) == 0 {
			fmt.Fprintln(w, "  (no attempt yet)")
			continue
		}
		tw := table(w)
		fmt.Fprintln(tw, "  TIME\tRELAY\tSTATUS\tCLASS\tREPLY")
		for _, a := range r.History {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", a.At.Format(timeFmt), orDash(esc(a.Relay)), esc(a.Status), esc(a.Class), esc(a.Reply))
		}
		tw.Flush()
	}
}

func renderSummary(w io.Writer, s admin.Summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "DOMAIN\tTOTAL\t%s\t\n", strings.Join(s.Buckets, "\t"))
	row := func(r admin.SummaryRow) {
		cells := make([]string, len(r.Counts))
		for i, c := range r.Counts {
			cells[i] = strconv.Itoa(c)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t\n", esc(r.Domain), r.Total, strings.Join(cells, "\t"))
	}
	row(s.Total)
	for _, r := range s.Rows {
		row(r)
	}
	tw.Flush()
}

func rateStr(r float64) string {
	if r <= 0 {
		return "-"
	}
	return strconv.FormatFloat(r, 'g', 3, 64)
}

func classCounts(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", esc(k), m[k])
	}
	return strings.Join(parts, " ")
}

func destState(d admin.Destination, now time.Time) string {
	if d.PausedUntil != nil {
		return fmt.Sprintf("%s until %s (%s)", esc(d.State), d.PausedUntil.Format("15:04:05Z"), age(d.PausedUntil.Sub(now)))
	}
	return esc(d.State)
}

func renderAlarm(w io.Writer, a admin.Alarm) {
	if a.Active {
		since := ""
		if a.Since != nil {
			since = " (since " + a.Since.Format(timeFmt) + ")"
		}
		fmt.Fprintf(w, "!! SENDER-WIDE ALARM%s: %s\n\n", since, esc(a.Reason))
	}
}

func renderDomains(w io.Writer, d admin.Domains, now time.Time) {
	renderAlarm(w, d.Alarm)
	if len(d.Destinations) == 0 {
		fmt.Fprintln(w, "no destination known yet (one appears at its first delivery attempt)")
	} else {
		tw := table(w)
		fmt.Fprintln(tw, "DESTINATION\tSTATE\tOPEN\tCONC\tRATE/S\t421/1H\tREPLIES/1H\tGREYLIST\tLAST REPLY")
		for _, x := range d.Destinations {
			if x.State == "idle" {
				// No policy state in memory: only the open mail is known.
				fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t%d\t-\t-\t-\n", esc(x.Name), esc(x.State), openStr(x), x.Replies421)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s/%s\t%d\t%s\t%s\t%s\n", esc(x.Name), destState(x, now), openStr(x), x.Concurrency, x.MaxConcurrency,
				rateStr(x.Rate), rateStr(x.MaxRate), x.Replies421, classCounts(x.LastHour), esc(x.GreylistWindow), clip(orDash(esc(x.LastReply)), 60))
		}
		tw.Flush()
	}
	renderClusterShares(w, d.Destinations)
	if d.Lint != nil {
		renderLint(w, *d.Lint)
	}
}

// renderLint is the sender side of `domains`: the content lint findings
// per sender domain over the last day (issue 16), with the hour each
// peaked, to set against the destinations' 421s. Sender domains and
// evidence come from clients: escaped.
func renderLint(w io.Writer, r lintcheck.Report) {
	fmt.Fprintf(w, "\ncontent lint, last 24 h, by sender domain (lint.mode %s):\n", esc(r.Mode))
	if len(r.Senders) == 0 {
		if r.Mode == "off" {
			fmt.Fprintln(w, "  lint is off")
		} else {
			fmt.Fprintln(w, "  no finding")
		}
		return
	}
	tw := table(w)
	// LINTED/SEEN: warn mode lints a sample when the relay is busy
	// (lint.warn_budget), so the counts are out of the linted messages.
	fmt.Fprintln(tw, "  SENDER DOMAIN\tLINTED/SEEN 24H\tFINDING\tSEVERITY\t24H\t1H\tPEAK HOUR\tLAST EVIDENCE")
	fixes := map[string]string{}
	var ids []string
	for _, s := range r.Senders {
		for i, f := range s.Findings {
			dom, msgs := "", ""
			if i == 0 {
				dom, msgs = clip(esc(s.Domain), 40), strconv.Itoa(s.Linted)+"/"+strconv.Itoa(s.Messages)
			}
			peak, at := 0, 0
			for h, n := range f.Hourly {
				if n >= peak {
					peak, at = n, h
				}
			}
			cur := 0
			if len(f.Hourly) > 0 {
				cur = f.Hourly[len(f.Hourly)-1]
			}
			hour := r.Start.Add(time.Duration(at) * time.Hour).UTC().Format("15:04Z")
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%d\t%s (%d)\t%s\n", dom, msgs, esc(f.ID), esc(f.Severity), f.Count, cur, hour, peak,
				clip(orDash(esc(f.Evidence)), 50))
			if _, ok := fixes[f.ID]; !ok {
				fixes[f.ID] = f.Fix
				ids = append(ids, f.ID)
			}
		}
	}
	tw.Flush()
	if r.More > 0 {
		fmt.Fprintf(w, "  (%d more sender domains with findings not shown)\n", r.More)
	}
	sort.Strings(ids)
	fmt.Fprintln(w, "fixes:")
	for _, id := range ids {
		fmt.Fprintf(w, "  %s: %s\n", esc(id), orDash(esc(fixes[id])))
	}
}

// openStr is the OPEN column: open recipients, and how many are held.
func openStr(x admin.Destination) string {
	if x.Held > 0 {
		return fmt.Sprintf("%d (%d held)", x.Open, x.Held)
	}
	return strconv.Itoa(x.Open)
}

func renderDomainDetail(w io.Writer, d admin.DomainDetail, now time.Time) {
	x := d.Destination
	tw := table(w)
	fmt.Fprintf(tw, "destination:\t%s\n", esc(x.Name))
	if len(d.Domains) > 0 {
		fmt.Fprintf(tw, "domains:\t%s\n", esc(strings.Join(d.Domains, " ")))
	}
	fmt.Fprintf(tw, "state:\t%s\n", destState(x, now))
	fmt.Fprintf(tw, "open:\t%s recipients\n", openStr(x))
	fmt.Fprintf(tw, "concurrency:\t%d of max %d (%d sessions open)\n", x.Concurrency, x.MaxConcurrency, x.Active)
	fmt.Fprintf(tw, "rate:\t%s of max %s messages/s\n", rateStr(x.Rate), rateStr(x.MaxRate))
	fmt.Fprintf(tw, "msgs/conn:\t%d\n", x.MsgsPerConn)
	fmt.Fprintf(tw, "greylist:\t%s\n", esc(x.GreylistWindow))
	fmt.Fprintf(tw, "last hour:\t%s; %d × 421\n", classCounts(x.LastHour), x.Replies421)
	fmt.Fprintf(tw, "last reply:\t%s\n", orDash(esc(x.LastReply)))
	tw.Flush()
	fmt.Fprintln(w, "\nrecent attempts (newest first):")
	if len(d.Recent) == 0 {
		fmt.Fprintln(w, "  none since the daemon started")
		return
	}
	tw = table(w)
	fmt.Fprintln(tw, "  TIME\tDOMAIN\tSTATUS\tCLASS\tREPLY")
	for _, e := range d.Recent {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", e.At.Format(timeFmt), esc(e.Domain), esc(e.Status), esc(e.Class), esc(e.Reply))
	}
	tw.Flush()
}

func renderLimits(w io.Writer, x admin.Destination) {
	fmt.Fprintf(w, "%s: max concurrency %d (now %d), max rate %s/s (now %s/s)\n", esc(x.Name), x.MaxConcurrency, x.Concurrency, rateStr(x.MaxRate), rateStr(x.Rate))
}

func renderStatus(w io.Writer, s admin.Status) {
	tw := table(w)
	ready := "ready"
	if !s.Ready {
		ready = "NOT READY: " + esc(s.Reason)
	}
	fmt.Fprintf(tw, "status:\tup, %s\n", ready)
	fmt.Fprintf(tw, "version:\t%s\n", esc(s.Version))
	fmt.Fprintf(tw, "started:\t%s (up %s)\n", s.Started.Format(timeFmt), age(time.Duration(s.UptimeSeconds)*time.Second))
	open := s.Queue["queued"] + s.Queue["active"] + s.Queue["held"]
	fmt.Fprintf(tw, "queue:\t%d open recipients: %d queued, %d active, %d held\n", open, s.Queue["queued"], s.Queue["active"], s.Queue["held"])
	fmt.Fprintf(tw, "finished:\t%d sent, %d bounced, %d expired, %d deleted (kept for the retention period)\n", s.Queue["sent"], s.Queue["bounced"], s.Queue["expired"], s.Queue["deleted"])
	if s.Oldest != nil {
		fmt.Fprintf(tw, "oldest:\t%s\n", s.Oldest.Format(timeFmt))
	}
	if c := s.Config; c != nil {
		file := esc(c.File)
		if file == "" {
			file = "(embedded defaults)"
		}
		fmt.Fprintf(tw, "config:\t%s sha256 %s (loaded %s)\n", file, esc(c.Hash), c.Loaded.UTC().Format(timeFmt))
		if len(c.NeedsRestart) > 0 {
			fmt.Fprintf(tw, "needs restart:\t%s (changed in the file; running with the old value)\n", esc(strings.Join(c.NeedsRestart, ", ")))
		}
		if lr := c.LastReload; lr != nil && !lr.OK {
			fmt.Fprintf(tw, "last reload:\tFAILED at %s, still running the config above: %s\n", lr.At.UTC().Format(timeFmt), esc(lr.Error))
		}
	}
	if e := s.Events; e != nil {
		fmt.Fprintf(tw, "events:\t%d in the outbox (%d bytes), %d dropped\n", e.Events, e.Bytes, e.Dropped)
	}
	tw.Flush()
	if s.Alarm.Active {
		fmt.Fprintln(w)
		renderAlarm(w, s.Alarm)
	}
	if e := s.Events; e != nil && e.Alarm != "" {
		fmt.Fprintf(w, "\nEVENTS ALARM: %s\n", esc(e.Alarm))
	}
}

func renderSuppressions(w io.Writer, list []admin.Suppression) {
	if len(list) == 0 {
		fmt.Fprintln(w, "suppression list is empty")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "ADDRESS\tSINCE\tREASON")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", esc(s.Addr), s.At.Format(timeFmt), esc(s.Reason))
	}
	tw.Flush()
}

func renderExplain(w io.Writer, e admin.Explanation) {
	if e.HTTP != "" {
		fmt.Fprintf(w, "note: %s\n\n", esc(e.HTTP))
	}
	tw := table(w)
	fmt.Fprintf(tw, "reply:\t%s\n", esc(e.Line))
	fmt.Fprintf(tw, "stage:\t%s\n", esc(e.Stage))
	class := esc(e.Class)
	if e.Scope != "" && e.Class == "throttle" { // scope only means something for a throttle
		class += " (" + esc(e.Scope) + ")"
	}
	fmt.Fprintf(tw, "class:\t%s\n", class)
	fmt.Fprintf(tw, "matched:\t%s\n", esc(e.Rule))
	fmt.Fprintf(tw, "why:\t%s\n", esc(e.Reason))
	fmt.Fprintf(tw, "reaction:\t%s\n", esc(e.Reaction))
	if e.Delay != "" {
		fmt.Fprintf(tw, "delay hint:\t%s\n", esc(e.Delay))
	}
	if e.For != "" {
		fmt.Fprintf(tw, "pause for:\t%s\n", esc(e.For))
	}
	if e.Fix != "" {
		fmt.Fprintf(tw, "fix:\t%s\n", esc(e.Fix))
	}
	tw.Flush()
}

// renderReload prints what a reload changed, key by key.
func renderReload(w io.Writer, r admin.ReloadResult) {
	file := esc(r.File)
	if file == "" {
		file = "the embedded defaults"
	}
	fmt.Fprintf(w, "reloaded %s (sha256 %s)\n", file, esc(r.Hash))
	if len(r.Changed) == 0 {
		fmt.Fprintln(w, "no setting changed (certificates and DKIM keys were read again)")
	} else {
		fmt.Fprintln(w, "changed:")
		for _, c := range r.Changed {
			fmt.Fprintf(w, "  %s: %s -> %s\n", esc(c.Key), esc(c.Old), esc(c.New))
		}
	}
	if len(r.NeedsRestart) > 0 {
		fmt.Fprintln(w, "needs restart (kept as running until then):")
		for _, k := range r.NeedsRestart {
			fmt.Fprintf(w, "  %s\n", esc(k))
		}
	}
}
