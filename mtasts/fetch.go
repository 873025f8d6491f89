package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"time"
)

// FetchTimeout bounds one policy fetch (RFC 8461 §3.3: "senders SHOULD
// impose a timeout of 60 seconds"). A fetch runs on the delivery path
// only when no valid policy is cached; refreshes of a cached one run on
// it too, but a failed one costs nothing (the cached policy stays).
const FetchTimeout = 60 * time.Second

// ErrFetch marks a policy that could not be fetched (RFC 8460 §4.3
// result type sts-policy-fetch-error); ErrSyntax one that did not parse
// (sts-policy-invalid); an x509 error one whose server's certificate did
// not verify (sts-webpki-invalid).
var ErrFetch = errors.New("mtasts: policy fetch failed")

// DialContext is the network seam of the fetcher: tests reach a local
// HTTPS server without port 443.
type DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

// NewHTTPClient returns the client policies are fetched with: full
// certificate validation against roots (nil = the system roots) for
// the policy host's name (RFC 8461 §3.3: "the certificate ... MUST be
// valid for the policy host"), no redirects (§3.3: "HTTP 3xx redirects
// MUST NOT be followed"), no proxy, no cookies, and FetchTimeout
// overall.
func NewHTTPClient(roots *x509.CertPool, dial DialContext, timeout time.Duration) *http.Client {
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second}).DialContext
	}
	if timeout <= 0 {
		timeout = FetchTimeout
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dial,
			TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			MaxIdleConns:          4,
			IdleConnTimeout:       30 * time.Second,
			DisableCompression:    true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       timeout,
	}
}

// PolicyURL is where the policy of domain is published (RFC 8461 §3.3).
func PolicyURL(domain string) string {
	return "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
}

// Fetch gets and parses the policy of domain.
func Fetch(ctx context.Context, c *http.Client, domain string) (*Policy, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, PolicyURL(domain), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// §3.3: only a 200 carries a policy (a 3xx is not followed).
		return nil, fmt.Errorf("%w: %s: HTTP %s", ErrFetch, PolicyURL(domain), resp.Status)
	}
	// §3.2: "senders SHOULD validate that the media type is text/plain".
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, fmt.Errorf("%w: %s: media type %q, want text/plain", ErrFetch, PolicyURL(domain), resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	if len(body) > MaxPolicySize {
		return nil, syntaxErr("policy larger than %d bytes", MaxPolicySize)
	}
	return ParsePolicy(body)
}

// FetchResult is the RFC 8460 §4.3.2.2 result type of a failed policy
// fetch: a certificate that does not verify for the policy host is
// sts-webpki-invalid, a body off the ABNF sts-policy-invalid, anything
// else (no answer, not 200, not text/plain) sts-policy-fetch-error.
func FetchResult(err error) string {
	var host x509.HostnameError
	var unk x509.UnknownAuthorityError
	var inv x509.CertificateInvalidError
	var cve *tls.CertificateVerificationError
	switch {
	case errors.Is(err, ErrSyntax):
		return "sts-policy-invalid"
	case errors.As(err, &cve), errors.As(err, &host), errors.As(err, &unk), errors.As(err, &inv):
		return "sts-webpki-invalid"
	}
	return "sts-policy-fetch-error"
}
