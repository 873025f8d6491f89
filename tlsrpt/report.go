package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"sluice/relay/outbound"
)

// Report is an aggregate report (RFC 8460 §4.4). Field names are the
// RFC's; tlsrpttest/report.schema.json is its structure as a JSON Schema.
type Report struct {
	OrganizationName string       `json:"organization-name"`
	DateRange        DateRange    `json:"date-range"`
	ContactInfo      string       `json:"contact-info"`
	ReportID         string       `json:"report-id"`
	Policies         []PolicyPart `json:"policies"`
}

// DateRange is the period the report covers (§4.4 "date-range"; §4.1:
// by default one UTC day).
type DateRange struct {
	Start string `json:"start-datetime"`
	End   string `json:"end-datetime"`
}

// PolicyPart is one entry of "policies": a policy and its outcomes.
type PolicyPart struct {
	Policy         Policy          `json:"policy"`
	Summary        Summary         `json:"summary"`
	FailureDetails []FailureDetail `json:"failure-details,omitempty"`
}

// Policy is §4.4's "policy" object.
type Policy struct {
	Type   string   `json:"policy-type"` // "sts", "tlsa", "no-policy-found"
	String []string `json:"policy-string,omitempty"`
	Domain string   `json:"policy-domain"`
	MXHost []string `json:"mx-host,omitempty"`
}

// Summary is §4.4's "summary".
type Summary struct {
	Successes int64 `json:"total-successful-session-count"`
	Failures  int64 `json:"total-failure-session-count"`
}

// FailureDetail is one entry of §4.4's "failure-details".
type FailureDetail struct {
	outbound.TLSFailureDetail
	Count int64 `json:"failed-session-count"`
}

// Identity is who reports: the [tlsrpt] section.
type Identity struct {
	Org       string // organization-name
	Contact   string // contact-info
	Submitter string // the submitter's domain (§5.3), in report-id and filename
	From      string // the From of mailed reports
}

// tally is one policy's outcomes over a period, as stored: the value of
// one key of the queue file's tlsrpt bucket.
type tally struct {
	End           int64           `json:"end"` // the period's end, Unix seconds
	PolicyStrings []string        `json:"ps,omitempty"`
	MXHosts       []string        `json:"mx,omitempty"`
	Successes     int64           `json:"s,omitempty"`
	Failures      []FailureDetail `json:"f,omitempty"`
}

// add merges one batch of outcomes into t.
func (t *tally) add(d *outbound.TLSTally) {
	if d.PolicyStrings != nil || d.MXHosts != nil {
		t.PolicyStrings, t.MXHosts = d.PolicyStrings, d.MXHosts
	}
	t.Successes += d.Successes
	idx := make(map[outbound.TLSFailureDetail]int, len(t.Failures))
	for i, f := range t.Failures {
		idx[f.TLSFailureDetail] = i
	}
	for k, n := range d.Failures {
		if i, ok := idx[k]; ok {
			t.Failures[i].Count += n
			continue
		}
		idx[k] = len(t.Failures)
		t.Failures = append(t.Failures, FailureDetail{k, n})
	}
}

// storeKey is a tally's key: the period's start (16 hex digits of Unix
// seconds, so that keys sort by time), the policy domain and type.
func storeKey(start time.Time, k outbound.TLSPolicyKey) string {
	return fmt.Sprintf("%016x %s %s", start.Unix(), k.Domain, k.Type)
}

func parseKey(s string) (start time.Time, k outbound.TLSPolicyKey, ok bool) {
	var sec int64
	n, err := fmt.Sscanf(s, "%016x %s %s", &sec, &k.Domain, &k.Type)
	if err != nil || n != 3 {
		return time.Time{}, k, false
	}
	return time.Unix(sec, 0).UTC(), k, true
}

// build makes the report of one policy domain for the period [start,
// end) from its stored tallies (one per policy type).
func build(id Identity, domain string, start, end time.Time, tallies map[string]*tally) *Report {
	r := &Report{
		OrganizationName: id.Org,
		ContactInfo:      id.Contact,
		// §4.4: "date-range" in RFC 3339; the end is the last second
		// of the period, as the RFC's example has it.
		DateRange: DateRange{Start: start.UTC().Format(time.RFC3339), End: end.Add(-time.Second).UTC().Format(time.RFC3339)},
		ReportID:  reportID(id, domain, start),
		Policies:  []PolicyPart{},
	}
	types := make([]string, 0, len(tallies))
	for t := range tallies {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, typ := range types {
		t := tallies[typ]
		p := PolicyPart{Policy: Policy{Type: typ, Domain: domain, String: t.PolicyStrings, MXHost: t.MXHosts}}
		p.Summary.Successes = t.Successes
		details := append([]FailureDetail(nil), t.Failures...)
		sort.Slice(details, func(i, j int) bool {
			a, b := details[i], details[j]
			if a.Result != b.Result {
				return a.Result < b.Result
			}
			if a.ReceivingMX != b.ReceivingMX {
				return a.ReceivingMX < b.ReceivingMX
			}
			if a.ReceivingIP != b.ReceivingIP {
				return a.ReceivingIP < b.ReceivingIP
			}
			return a.SendingIP < b.SendingIP
		})
		for _, f := range details {
			p.Summary.Failures += f.Count
		}
		p.FailureDetails = details
		r.Policies = append(r.Policies, p)
	}
	return r
}

// reportID is unique per submitter, policy domain and period, and the
// same for every attempt at one report, so that a receiver can drop a
// duplicate (§4.4 "report-id"; §5.3 puts it in the Subject as a
// msg-id).
func reportID(id Identity, domain string, start time.Time) string {
	return strconv.FormatInt(start.Unix(), 10) + "." + domain + "@" + id.Submitter
}

// filename is §5.1's: submitter!policy-domain!begin!end.json.gz, the
// timestamps in Unix seconds.
func filename(id Identity, domain string, start, end time.Time) string {
	return fmt.Sprintf("%s!%s!%d!%d.json.gz", id.Submitter, domain, start.Unix(), end.Unix())
}

// gzipJSON is the report as delivered: JSON, gzip-compressed (§5.2).
func gzipJSON(r *Report) ([]byte, error) {
	j, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(j); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
