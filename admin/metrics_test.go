package admin

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"sluice/policy"
	"sluice/reply"
	"sluice/scheduler"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.tel.o.AuthVerdicts = func() map[string]uint64 { return map[string]uint64{"pass": 7, "warn": 1} }
	f.tel.o.TLSSessions = func() map[[2]string]uint64 {
		return map[[2]string]uint64{{"sts", "success"}: 4, {"sts", "certificate-expired"}: 2}
	}
	f.tel.o.LintFindings = func() map[[2]string]uint64 {
		return map[[2]string]uint64{{"link-shortener", "block"}: 3, {"subject-caps", "info"}: 1}
	}
	f.tel.o.LintChecks = func() (uint64, uint64) { return 40, 60 }
	f.enqueue(t, "a@src.test", "b@dest.test")
	f.clk.Advance(90 * time.Second)
	f.pause("down.test")
	f.tel.OnInbound(true, "", 20*time.Millisecond)
	f.tel.OnInbound(false, "relay-denied", 0)
	// MaxDestinations is 3 in the fixture: d0..d2 keep names, d3..d5 are "other".
	for i := range 6 {
		f.tel.OnAttempt(scheduler.Attempt{Dest: fmt.Sprintf("d%d.test", i), Class: policy.ClassThrottle, Status: "deferred",
			Reply: reply.Reply{Code: 421, Enhanced: "4.7.0", Text: "too many connections"}})
	}
	f.tel.OnAttempt(scheduler.Attempt{Dest: "d0.test", Class: policy.ClassSuccess, Status: "sent", Reply: reply.Reply{Code: 250}, Delay: 3 * time.Second})
	f.tel.OnAttempt(scheduler.Attempt{Dest: "d1.test", Class: policy.ClassAuthFix, Status: "deferred", Fix: "SPF",
		Reply: reply.Reply{Code: 421, Enhanced: "4.7.27", Text: "SPF validation failed"}})

	body := httptestGet(t, f.srv.HTTPHandler("127.0.0.1:8025"), "/metrics").Body.String()
	for _, want := range []string{
		`sluice_queue_recipients{state="queued"} 1`,
		`sluice_queue_oldest_age_seconds 90`,
		`sluice_inbound_accepted_total 1`,
		`sluice_inbound_rejected_total{reason="relay-denied"} 1`,
		`sluice_delivery_attempts_total{class="throttle",destination="d0.test"} 1`,
		`sluice_delivery_attempts_total{class="throttle",destination="other"} 3`,
		`sluice_delivery_attempts_total{class="success",destination="d0.test"} 1`,
		`sluice_delivery_421_total{destination="other"} 3`,
		`sluice_destination_paused{destination="other"} 1`,
		`sluice_destination_max_concurrency{destination="other"} 20`,
		`sluice_delivery_latency_seconds_count{status="sent"} 1`,
		`sluice_inbound_accept_latency_seconds_count 1`,
		`sluice_auth_verdicts_total{outcome="pass"} 7`,
		`sluice_tls_sessions_total{policy_type="sts",result="certificate-expired"} 2`,
		`sluice_tls_sessions_total{policy_type="sts",result="success"} 4`,
		`sluice_lint_findings_total{id="link-shortener",severity="block"} 3`,
		`sluice_lint_findings_total{id="subject-caps",severity="info"} 1`,
		`sluice_lint_checked_total 40`,
		`sluice_lint_skipped_total{reason="budget"} 60`,
		`sluice_sender_alarm 0`,
		`sluice_sender_fix_alarms_total{fix="SPF"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, "d4.test") {
		t.Error("label cardinality not bounded: d4.test exported")
	}
}

func TestDashboardFiles(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := f.srv.HTTPHandler("127.0.0.1:8025")
	for _, p := range []string{"/", "/app.js", "/style.css"} {
		rec := httptestGet(t, h, p)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d", p, rec.Code)
		}
		b, _ := io.ReadAll(rec.Body)
		// Offline: nothing is fetched from another origin.
		for _, bad := range []string{"http://", "https://", "//cdn"} {
			if strings.Contains(strings.ReplaceAll(string(b), "http://www.w3.org/2000/svg", ""), bad) {
				t.Errorf("%s refers to %q: the dashboard must work offline", p, bad)
			}
		}
	}
	rec := httptestGet(t, h, "/v1/dashboard")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"bucket_seconds": 300`) {
		t.Fatalf("dashboard data = %d %s", rec.Code, rec.Body)
	}
	// Read-only: no action is reachable on the HTTP listener.
	req, _ := http.NewRequest(http.MethodPost, "/v1/queue/delete", strings.NewReader(`{"domain":"x"}`))
	rr := httptestRecorder(h, req)
	if rr.Code == http.StatusOK {
		t.Fatal("POST /v1/queue/delete answered 200 on the HTTP listener")
	}
}
