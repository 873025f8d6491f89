package outbound

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"sort"
	"sync"

	"sluice/dane"
)

// TLSResults counts TLS outcomes per policy domain and policy type: the
// material of a TLS-RPT aggregate report (RFC 8460 §4.4: policy-domain,
// policy-type, total-successful-session-count, total-failure-session-count
// and failure-details by result-type). It keeps two tallies under one
// lock, so that recording costs a map bump and nothing else:
//   - the cumulative one since start (Snapshot, Totals: the metric);
//   - the delta since the last Take, with the failure details and the
//     policy as applied, which package tlsrpt moves into the queue file
//     in batches and turns into the daily reports.
type TLSResults struct {
	mu    sync.Mutex
	m     map[TLSPolicyKey]*TLSCount
	delta map[TLSPolicyKey]*TLSTally
}

// TLSPolicyKey names one policy: the recipient domain of an MTA-STS
// policy, or the domain whose next hop was checked (RFC 8460 §4.4).
type TLSPolicyKey struct {
	Domain string
	Type   string // "sts", "tlsa", "no-policy-found"
}

// TLSCount is one policy's tally.
type TLSCount struct {
	Successes int64
	Failures  map[string]int64 // by RFC 8460 §4.3 result-type
}

// TLSOutcome is one session's outcome under its policy (RFC 8460 §4.4).
type TLSOutcome struct {
	Domain, Type string
	// PolicyStrings and MXHosts describe the policy applied (§4.4
	// "policy-string", "mx-host"); nil when the source has none.
	PolicyStrings, MXHosts []string
	Detail                 TLSFailureDetail // Detail.Result "" = success
}

// TLSFailureDetail is the key of one failure-details entry (RFC 8460
// §4.4): sessions failing the same way with the same peers are counted
// together.
type TLSFailureDetail struct {
	Result      string `json:"result-type"`
	SendingIP   string `json:"sending-mta-ip,omitempty"`
	ReceivingMX string `json:"receiving-mx-hostname,omitempty"`
	ReceivingIP string `json:"receiving-ip,omitempty"`
}

// TLSTally is one policy's outcomes since the last Take.
type TLSTally struct {
	PolicyStrings, MXHosts []string
	Successes              int64
	Failures               map[TLSFailureDetail]int64
}

// NewTLSResults returns an empty tally. It keeps no delta until
// KeepDeltas: without a reporter to Take them, deltas would only grow.
func NewTLSResults() *TLSResults {
	return &TLSResults{m: map[TLSPolicyKey]*TLSCount{}}
}

// KeepDeltas starts keeping the outcomes since the last Take (TLS-RPT
// is on).
func (r *TLSResults) KeepDeltas() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.delta == nil {
		r.delta = map[TLSPolicyKey]*TLSTally{}
	}
}

func (r *TLSResults) get(k TLSPolicyKey) *TLSCount {
	c := r.m[k]
	if c == nil {
		c = &TLSCount{Failures: map[string]int64{}}
		r.m[k] = c
	}
	return c
}

// Record counts one session's outcome.
func (r *TLSResults) Record(o TLSOutcome) {
	if r == nil || o.Domain == "" {
		return
	}
	k := TLSPolicyKey{o.Domain, o.Type}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.get(k)
	if o.Detail.Result == "" {
		c.Successes++
	} else {
		c.Failures[o.Detail.Result]++
	}
	if r.delta == nil {
		return
	}
	d := r.delta[k]
	if d == nil {
		d = &TLSTally{Failures: map[TLSFailureDetail]int64{}}
		r.delta[k] = d
	}
	if o.PolicyStrings != nil || o.MXHosts != nil {
		// The policy as last applied: slices the source built for this
		// requirement and never changes afterwards, so shared, not copied.
		d.PolicyStrings, d.MXHosts = o.PolicyStrings, o.MXHosts
	}
	if o.Detail.Result == "" {
		d.Successes++
		return
	}
	d.Failures[o.Detail]++
}

// Success records one session that met its policy (no details).
func (r *TLSResults) Success(domain, typ string) {
	r.Record(TLSOutcome{Domain: domain, Type: typ})
}

// Failure records one session that failed its policy, by result type
// (no details).
func (r *TLSResults) Failure(domain, typ, result string) {
	r.Record(TLSOutcome{Domain: domain, Type: typ, Detail: TLSFailureDetail{Result: result}})
}

// Take returns the outcomes recorded since the last Take and starts a
// new delta: the batch package tlsrpt writes to the queue file.
func (r *TLSResults) Take() map[TLSPolicyKey]*TLSTally {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.delta) == 0 {
		return nil
	}
	d := r.delta
	r.delta = map[TLSPolicyKey]*TLSTally{}
	return d
}

// Snapshot returns a copy of the tally since start, keys sorted.
func (r *TLSResults) Snapshot() ([]TLSPolicyKey, map[TLSPolicyKey]TLSCount) {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]TLSPolicyKey, 0, len(r.m))
	out := make(map[TLSPolicyKey]TLSCount, len(r.m))
	for k, c := range r.m {
		keys = append(keys, k)
		f := make(map[string]int64, len(c.Failures))
		for rt, n := range c.Failures {
			f[rt] = n
		}
		out[k] = TLSCount{Successes: c.Successes, Failures: f}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Domain != keys[j].Domain {
			return keys[i].Domain < keys[j].Domain
		}
		return keys[i].Type < keys[j].Type
	})
	return keys, out
}

// Totals sums the tally over policy domains, by policy type and result
// ("success" or a failure's result type): the sluice_tls_sessions_total
// metric (a label per domain would be unbounded).
func (r *TLSResults) Totals() map[[2]string]uint64 {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[[2]string]uint64{}
	for k, c := range r.m {
		if c.Successes > 0 {
			out[[2]string{k.Type, "success"}] += uint64(c.Successes)
		}
		for rt, n := range c.Failures {
			out[[2]string{k.Type, rt}] += uint64(n)
		}
	}
	return out
}

// Result types of RFC 8460 §4.3 that the outbound side detects.
const (
	ResultSTARTTLSNotSupported = "starttls-not-supported"
	ResultHostMismatch         = "certificate-host-mismatch"
	ResultExpired              = "certificate-expired"
	ResultNotTrusted           = "certificate-not-trusted"
	ResultValidationFailure    = "validation-failure"
	// RFC 8460 §4.3.2, DANE: the TLSA records do not match the server's
	// chain; a DNSSEC lookup DANE needs failed (bogus or no answer).
	ResultTLSAInvalid   = "tlsa-invalid"
	ResultDNSSECInvalid = "dnssec-invalid"
)

// resultType reads a verification or handshake error as its RFC 8460
// §4.3 result type.
func resultType(err error) string {
	var host x509.HostnameError
	var inv x509.CertificateInvalidError
	var unk x509.UnknownAuthorityError
	var cve *tls.CertificateVerificationError
	switch {
	case errors.Is(err, dane.ErrNoMatch):
		return ResultTLSAInvalid
	case errors.Is(err, dane.ErrLookup):
		return ResultDNSSECInvalid
	case errors.As(err, &host):
		return ResultHostMismatch
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return ResultExpired
	case errors.As(err, &unk):
		return ResultNotTrusted
	case errors.As(err, &cve):
		return resultType(cve.Err)
	}
	return ResultValidationFailure
}
