package tlsrpt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"sluice/internal/clock"
	"sluice/relay/outbound"
	"sluice/resolver"
)

// Store keeps tallies across restarts: the queue file's "tlsrpt" bucket
// (queue.Queue satisfies it). Values are opaque to the store.
type Store interface {
	UpdateTLSReports(keys []string, fn func(key string, old []byte) ([]byte, error)) error
	TLSReports(before string) (map[string][]byte, error)
	DeleteTLSReports(keys []string) error
}

// Source is where outcomes come from: outbound.TLSResults.
type Source interface {
	Take() map[outbound.TLSPolicyKey]*outbound.TLSTally
}

// Mailer queues one message for delivery (the daemon: the queue's
// Enqueue, then a kick of the scheduler). A nil error means the queue
// holds it: from there on it is retried like any mail.
type Mailer func(ctx context.Context, from string, to []string, msg []byte) error

// sendConcurrency bounds the reports sent at once.
const sendConcurrency = 8

// Options configure a Reporter. The daemon fills every field from the
// [tlsrpt] section; there are no defaults here.
type Options struct {
	Identity
	Interval    time.Duration // the reporting period: divides 24h (§4.1: one UTC day by default)
	FlushEvery  time.Duration // how often outcomes go to the store
	RetryEvery  time.Duration // how often undelivered reports are tried again
	GiveUpAfter time.Duration // an undeliverable report is dropped this long after its period ends
	Source      Source
	Store       Store
	Resolver    Resolver
	Mail        Mailer
	HTTP        *http.Client // for https: rua; its Timeout bounds a POST
	Clock       clock.Clock
	Log         *slog.Logger
}

// Reporter moves outcomes to the store and sends the reports of closed
// periods. Run is its only goroutine; Flush and SendDue may also be
// called directly (tests, shutdown).
type Reporter struct {
	o       Options
	mu      sync.Mutex // serialises Flush and SendDue
	pending map[string]*tally
}

// New returns a Reporter.
func New(o Options) *Reporter {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Reporter{o: o}
}

// periodStart is the start of the period holding t: UTC-aligned, since
// Interval divides a day and time.Truncate counts from a UTC midnight.
func (r *Reporter) periodStart(t time.Time) time.Time { return t.UTC().Truncate(r.o.Interval) }

// Run flushes every FlushEvery and, at each period boundary and every
// RetryEvery, sends what is due, until ctx ends; it flushes once more
// before returning (shutdown).
func (r *Reporter) Run(ctx context.Context) {
	if err := r.SendDue(ctx); err != nil {
		r.o.Log.Warn("tlsrpt: sending reports", "err", err)
	}
	flush := r.o.Clock.NewTimer(r.o.FlushEvery)
	defer flush.Stop()
	now := r.o.Clock.Now()
	boundary := r.periodStart(now).Add(r.o.Interval)
	send := r.o.Clock.NewTimer(min(boundary.Sub(now), r.o.RetryEvery))
	defer send.Stop()
	for {
		select {
		case <-ctx.Done():
			r.flushAt(r.o.Clock.Now())
			return
		case <-flush.C():
			r.flushAt(r.o.Clock.Now())
			flush.Reset(r.o.FlushEvery)
		case <-send.C():
			now := r.o.Clock.Now()
			if !now.Before(boundary) {
				// The outcomes taken now belong to the period just
				// closed: they were recorded before the boundary, up
				// to the timer's lateness.
				r.flushAt(boundary.Add(-time.Nanosecond))
			}
			if err := r.SendDue(ctx); err != nil {
				r.o.Log.Warn("tlsrpt: sending reports", "err", err)
			}
			now = r.o.Clock.Now()
			boundary = r.periodStart(now).Add(r.o.Interval)
			send.Reset(min(boundary.Sub(now), r.o.RetryEvery))
		}
	}
}

// Flush moves the outcomes recorded since the last flush into the
// store, under the period holding now.
func (r *Reporter) Flush() error { return r.flushAt(r.o.Clock.Now()) }

func (r *Reporter) flushAt(at time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := r.periodStart(at)
	end := start.Add(r.o.Interval)
	if r.pending == nil {
		r.pending = map[string]*tally{}
	}
	for k, d := range r.o.Source.Take() {
		key := storeKey(start, k)
		t := r.pending[key]
		if t == nil {
			t = &tally{End: end.Unix()}
			r.pending[key] = t
		}
		t.add(d)
	}
	if len(r.pending) == 0 {
		return nil
	}
	keys := make([]string, 0, len(r.pending))
	for k := range r.pending {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	err := r.o.Store.UpdateTLSReports(keys, func(key string, old []byte) ([]byte, error) {
		var t tally
		if len(old) > 0 {
			if err := json.Unmarshal(old, &t); err != nil {
				// A damaged entry must not block the day's others.
				t = tally{}
			}
		}
		p := r.pending[key]
		t.End = p.End
		t.add(&outbound.TLSTally{PolicyStrings: p.PolicyStrings, MXHosts: p.MXHosts, Successes: p.Successes, Failures: details(p.Failures)})
		return json.Marshal(&t)
	})
	if err != nil {
		// Kept in memory and written at the next flush.
		r.o.Log.Warn("tlsrpt: saving outcomes", "err", err)
		return err
	}
	r.pending = nil
	return nil
}

func details(fs []FailureDetail) map[outbound.TLSFailureDetail]int64 {
	m := make(map[outbound.TLSFailureDetail]int64, len(fs))
	for _, f := range fs {
		m[f.TLSFailureDetail] += f.Count
	}
	return m
}

// SendDue sends the report of every policy domain of every closed
// period in the store, and deletes the tallies of the reports a
// destination took, of the domains that want none, and of the reports
// undeliverable for longer than GiveUpAfter.
func (r *Reporter) SendDue(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.o.Clock.Now()
	current := r.periodStart(now)
	stored, err := r.o.Store.TLSReports(fmt.Sprintf("%016x", current.Unix()))
	if err != nil {
		return err
	}
	type group struct {
		start   time.Time
		end     time.Time
		domain  string
		keys    []string
		tallies map[string]*tally
	}
	groups := map[string]*group{}
	var bad []string
	for key, v := range stored {
		start, k, ok := parseKey(key)
		var t tally
		if !ok || json.Unmarshal(v, &t) != nil {
			bad = append(bad, key)
			continue
		}
		gk := fmt.Sprintf("%016x %s", start.Unix(), k.Domain)
		g := groups[gk]
		if g == nil {
			g = &group{start: start, end: time.Unix(t.End, 0).UTC(), domain: k.Domain, tallies: map[string]*tally{}}
			groups[gk] = g
		}
		g.keys = append(g.keys, key)
		g.tallies[k.Type] = &t
	}
	gks := make([]string, 0, len(groups))
	for gk := range groups {
		gks = append(gks, gk)
	}
	sort.Strings(gks)
	done := bad
	var errs []error
	// The domains are independent: a few at a time, so that a day with
	// many domains (one TXT lookup each, most answering "no record") is
	// not one long sequence of lookups.
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, sendConcurrency)
	for _, gk := range gks {
		g := groups[gk]
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := r.send(ctx, g.domain, g.start, g.end, g.tallies)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				done = append(done, g.keys...)
			case errors.Is(err, ErrNoRecord) || errors.Is(err, ErrSyntax):
				// The domain asks for no reports (RFC 8460 §3).
				r.o.Log.Debug("tlsrpt: no report wanted", "domain", g.domain, "err", err)
				done = append(done, g.keys...)
			case now.Sub(g.end) > r.o.GiveUpAfter:
				r.o.Log.Warn("tlsrpt: report undeliverable, dropped", "domain", g.domain, "period_start", g.start.Format(time.RFC3339), "err", err)
				done = append(done, g.keys...)
			default:
				r.o.Log.Info("tlsrpt: report not delivered, will retry", "domain", g.domain, "period_start", g.start.Format(time.RFC3339), "err", err)
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if len(done) > 0 {
		if err := r.o.Store.DeleteTLSReports(done); err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d report(s) to retry: %w", len(errs), errs[0])
	}
	return nil
}

// send delivers one report to every rua of domain; it succeeds when one
// destination took it (RFC 8460 §5: each rua is a place the domain reads
// reports; a failing one must not make the others receive duplicates on
// every retry).
func (r *Reporter) send(ctx context.Context, domain string, start, end time.Time, tallies map[string]*tally) error {
	rua, err := Lookup(ctx, r.o.Resolver, domain)
	if err != nil {
		var re *resolver.Error
		if errors.As(err, &re) {
			return fmt.Errorf("looking up _smtp._tls.%s: %w", domain, err)
		}
		return err
	}
	rep := build(r.o.Identity, domain, start, end, tallies)
	gz, err := gzipJSON(rep)
	if err != nil {
		return err
	}
	var errs []error
	delivered := 0
	for _, u := range rua {
		var err error
		switch u.Scheme {
		case "mailto":
			err = r.mail(ctx, u, domain, start, end, rep.ReportID, gz)
		case "https":
			err = r.post(ctx, u, gz)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", redactURL(u), err))
			continue
		}
		delivered++
		r.o.Log.Info("tlsrpt: report sent", "domain", domain, "to", redactURL(u), "report_id", rep.ReportID,
			"period_start", start.Format(time.RFC3339))
	}
	if delivered > 0 {
		for _, e := range errs {
			r.o.Log.Warn("tlsrpt: a report destination failed", "domain", domain, "err", e)
		}
		return nil
	}
	return errors.Join(errs...)
}

func (r *Reporter) mail(ctx context.Context, u *url.URL, domain string, start, end time.Time, reportID string, gz []byte) error {
	to := Mailbox(u)
	if !headerSafe(to) || !headerSafe(domain) {
		return errors.New("unsafe address or domain")
	}
	msg, err := mailReport(r.o.Identity, to, domain, start, end, r.o.Clock.Now(), reportID, gz)
	if err != nil {
		return err
	}
	return r.o.Mail(ctx, r.o.From, []string{to}, msg)
}

// post sends the report to an https: rua (RFC 8460 §5.4): a POST with
// the gzip-compressed report as application/tlsrpt+gzip; any 2xx is
// success. The client's Timeout bounds it; redirects are not followed
// (the daemon's client refuses them: the rua is what the domain
// published).
func (r *Reporter) post(ctx context.Context, u *url.URL, gz []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(gz))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", MediaType)
	resp, err := r.o.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}

// redactURL drops an https rua's query, which may carry a token.
func redactURL(u *url.URL) string {
	if u.Scheme != "https" {
		return u.String()
	}
	c := *u
	if c.RawQuery != "" {
		c.RawQuery = "…"
	}
	return strings.TrimSuffix(c.String(), "?")
}
