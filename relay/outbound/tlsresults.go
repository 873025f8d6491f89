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
// and failure-details by result-type). Reporting itself is not built
// yet (issue 14 item 4); this is the one place outcomes are recorded.
type TLSResults struct {
	mu sync.Mutex
	m  map[TLSPolicyKey]*TLSCount
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

// NewTLSResults returns an empty tally.
func NewTLSResults() *TLSResults { return &TLSResults{m: map[TLSPolicyKey]*TLSCount{}} }

func (r *TLSResults) get(k TLSPolicyKey) *TLSCount {
	c := r.m[k]
	if c == nil {
		c = &TLSCount{Failures: map[string]int64{}}
		r.m[k] = c
	}
	return c
}

// Success records one session that met its policy.
func (r *TLSResults) Success(domain, typ string) {
	if r == nil || domain == "" {
		return
	}
	r.mu.Lock()
	r.get(TLSPolicyKey{domain, typ}).Successes++
	r.mu.Unlock()
}

// Failure records one session that failed its policy, by result type.
func (r *TLSResults) Failure(domain, typ, result string) {
	if r == nil || domain == "" {
		return
	}
	r.mu.Lock()
	r.get(TLSPolicyKey{domain, typ}).Failures[result]++
	r.mu.Unlock()
}

// Snapshot returns a copy of the tally, keys sorted.
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
