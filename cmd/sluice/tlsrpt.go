package main

import (
	"context"
	"strings"
	"time"

	"sluice/auth"
	"sluice/internal/clock"
	"sluice/mtasts"
	"sluice/queue"
	"sluice/tlsrpt"
)

// TLS-RPT's timings. They are mechanism, not policy: the period is the
// operator's (tlsrpt.interval); these say how often the tally is saved
// (the outcomes a crash may lose) and how hard an undelivered report is
// pushed (RFC 8460 §5.5 leaves retries to the sender's local policy).
const (
	tlsrptFlushEvery  = time.Minute
	tlsrptRetryEvery  = time.Hour
	tlsrptGiveUpAfter = 24 * time.Hour
	tlsrptPostTimeout = 30 * time.Second
)

// newReporter builds the TLS-RPT reporter (nil when [tlsrpt] is off)
// once the queue is open, and starts keeping the tally's deltas for it.
func (d *daemon) newReporter() *tlsrpt.Reporter {
	cfg := d.cfg
	r := cfg.TLSRPT
	if !r.Enabled {
		return nil
	}
	d.tlsResults.KeepDeltas()
	roots, _ := cfg.Delivery.RootCAs() // validated at load
	return tlsrpt.New(tlsrpt.Options{
		Identity:    tlsrpt.Identity{Org: r.OrganizationName, Contact: r.ContactInfo, Submitter: r.Submitter, From: r.From},
		Interval:    time.Duration(r.Interval),
		FlushEvery:  tlsrptFlushEvery,
		RetryEvery:  tlsrptRetryEvery,
		GiveUpAfter: tlsrptGiveUpAfter,
		Source:      d.tlsResults,
		Store:       d.queue,
		Resolver:    d.resolver,
		Mail:        d.queueReport,
		// The same client as MTA-STS fetches: full validation against
		// the system roots plus delivery.ca_file, no redirects, no
		// proxy, one timeout over the whole POST, names resolved
		// through delivery.resolver.
		HTTP:  mtasts.NewHTTPClient(roots, resolvingDialer(d.resolver, 0), tlsrptPostTimeout),
		Clock: clock.Real,
		Log:   d.log.With("log", "tlsrpt"),
	})
}

// queueReport puts a mailed report in the queue, as the DSNs are: from
// there it is delivered, retried and expired like any mail.
func (d *daemon) queueReport(ctx context.Context, from string, to []string, msg []byte) error {
	// RFC 8460 §3: a mailed report must carry a valid DKIM signature of
	// the reporting domain (receivers ignore one without). The keys are
	// the [[auth.dkim]] ones in force for the From domain; the report's
	// own header fields are signed too (§5.3).
	c, err := d.reportSigner()
	if err != nil {
		return err
	}
	sigs, err := c.SignFrom(from[strings.LastIndexByte(from, '@')+1:], msg, "TLS-Report-Domain", "TLS-Report-Submitter")
	if err != nil {
		return err
	}
	if sigs == nil {
		d.log.Warn("tlsrpt: no DKIM key for the report's From domain ([[auth.dkim]]); receivers ignore unsigned reports (RFC 8460 §3)", "from", from)
	}
	id, err := d.queue.Enqueue(ctx, queue.NewMessage{From: from, Rcpts: to, Body: append(sigs, msg...), TLSReport: true})
	if err != nil {
		return err
	}
	d.log.Info("tlsrpt: report queued", "id", id, "to", to[0])
	d.sched.Kick()
	return nil
}

// reportSigner is the auth checker that signs reports: made again only
// when a reload changed the configuration (the DKIM key files are read
// at each reload), not once per report.
func (d *daemon) reportSigner() (*auth.Checker, error) {
	cfg := d.live.Load()
	d.rptMu.Lock()
	defer d.rptMu.Unlock()
	if d.rptSigner != nil && d.rptSignerCfg == cfg {
		return d.rptSigner, nil
	}
	c, err := auth.New(authOptions(cfg, d.log, d.resolver.Compat()))
	if err != nil {
		return nil, err
	}
	d.rptSigner, d.rptSignerCfg = c, cfg
	return c, nil
}
