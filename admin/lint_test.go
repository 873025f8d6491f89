package admin

import (
	"strings"
	"testing"

	"sluice/relay/lintcheck"
)

// TestLintFindingsEscaped: the sender domain and the evidence of a lint
// finding are the client's (a From header, a link in the body). The API
// serves them as JSON strings, markup escaped; the unauthenticated
// dashboard data leaves the evidence out; the dashboard sets them as
// text only (TestDashboardRendersTextOnly).
func TestLintFindingsEscaped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const domain = "<script>alert(1)</script>.test"
	const evidence = "\x1b[2J<img src=x onerror=alert(2)> https://bit.ly/secret-token?u=jane@example.com"
	ta, b := lintcheck.NewTally(10), lintcheck.NewBulk(10)
	b.Add(domain, f.clk.Now())
	ta.Add(domain, []lintcheck.Seen{{ID: "link-shortener", Severity: "block", Evidence: evidence, Fix: "Link to your own domain."}}, f.clk.Now())
	f.srv.o.Lint = func() lintcheck.Report {
		r := ta.Report(f.clk.Now(), b, 50)
		r.Mode = "warn"
		return r
	}

	// The admin API (authenticated): everything, as escaped JSON.
	raw := httptestGet(t, f.srv.APIHandler(), "/v1/domains").Body.String()
	for _, bad := range []string{"<script>", "<img", "\x1b"} {
		if strings.Contains(raw, bad) {
			t.Errorf("/v1/domains carries %q unescaped:\n%s", bad, raw)
		}
	}
	d, err := f.client.Domains(ctx())
	if err != nil {
		t.Fatal(err)
	}
	if d.Lint == nil || len(d.Lint.Senders) != 1 {
		t.Fatalf("lint %+v", d.Lint)
	}
	s := d.Lint.Senders[0]
	if s.Domain != domain || s.Messages != 1 || s.Total != 1 || s.Findings[0].Evidence != evidence || s.Findings[0].Severity != "block" {
		t.Errorf("sender %+v: the API must carry the values as they were (escaped by JSON)", s)
	}

	// The public dashboard data: counts, no evidence.
	pub := httptestGet(t, f.srv.HTTPHandler("127.0.0.1:8025"), "/v1/dashboard").Body.String()
	for _, bad := range []string{"<script>", "secret-token", "jane@", "\x1b"} {
		if strings.Contains(pub, bad) {
			t.Errorf("the public dashboard data carries %q:\n%s", bad, pub)
		}
	}
	if !strings.Contains(pub, `"link-shortener"`) || !strings.Contains(pub, `\u003cscript\u003e`) {
		t.Errorf("the public dashboard data lacks the finding or the escaped domain:\n%s", pub)
	}
}
