package auth

import (
	"bytes"
	"fmt"
	"io"

	"github.com/emersion/go-msgauth/dkim"
)

// signedHeaders are the fields our signature covers. From is listed twice
// ("over-signed", RFC 6376 §8.15): the extra entry signs an absent second
// From, so a From added later breaks the signature instead of riding on it.
// Listed fields that are absent are signed as absent, which likewise stops
// them being added in transit.
var signedHeaders = []string{
	"From", "From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
}

// sign computes one DKIM-Signature per key (relaxed/relaxed, RFC 6376
// §3.4.2 and §3.4.4, which survive the header refolding receivers do) over
// the message that open returns, reading it once per key. It returns the
// fields to put in front of the message and a "domain/selector(algo)"
// label per signature.
func sign(open func() (io.ReadCloser, error), keys []signingKey) ([]byte, []string, error) {
	if len(keys) == 0 {
		return nil, nil, nil
	}
	var sigs bytes.Buffer
	labels := make([]string, 0, len(keys))
	for _, k := range keys {
		msg, err := open()
		if err != nil {
			return nil, nil, fmt.Errorf("auth: dkim sign %s/%s: %w", k.Domain, k.Selector, err)
		}
		field, err := signature(msg, k, signedHeaders)
		msg.Close()
		if err != nil {
			return nil, nil, err
		}
		sigs.WriteString(field)
		labels = append(labels, fmt.Sprintf("%s/%s(%s)", k.Domain, k.Selector, k.algo))
	}
	return sigs.Bytes(), labels, nil
}

// signature computes the DKIM-Signature header field (with its CRLF) that
// key k puts on the message read from msg. The message itself is not
// changed: the caller prepends the field.
func signature(msg io.Reader, k signingKey, headers []string) (string, error) {
	s, err := dkim.NewSigner(&dkim.SignOptions{
		Domain:                 k.Domain,
		Selector:               k.Selector,
		Signer:                 k.signer,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             headers,
	})
	if err != nil {
		return "", fmt.Errorf("auth: dkim signer for %s/%s: %w", k.Domain, k.Selector, err)
	}
	// go-msgauth fails on a message without the empty line that ends the
	// header section ("failed to read header: EOF"); endHeader supplies it
	// to the signer only, so the body it hashes is empty (see endHeader).
	if _, err := io.Copy(s, endHeader(msg)); err != nil {
		s.Close()
		return "", fmt.Errorf("auth: dkim sign %s/%s: %w", k.Domain, k.Selector, err)
	}
	if err := s.Close(); err != nil {
		return "", fmt.Errorf("auth: dkim sign %s/%s: %w", k.Domain, k.Selector, err)
	}
	return s.Signature(), nil
}

// SignFrom returns the DKIM-Signature fields (RFC 6376) that the keys
// for mail From domain put on msg, signing the extra header fields too;
// nil when no key is configured for the domain. It is for messages
// sluice writes itself and queues without the submission path's check
// (TLS-RPT reports, which RFC 8460 §3 requires to carry a valid DKIM
// signature of the reporting domain).
func (c *Checker) SignFrom(domain string, msg []byte, extra ...string) ([]byte, error) {
	keys := c.keysFor(domain)
	if len(keys) == 0 {
		return nil, nil
	}
	headers := append(append([]string(nil), signedHeaders...), extra...)
	var sigs bytes.Buffer
	for _, k := range keys {
		field, err := signature(bytes.NewReader(msg), k, headers)
		if err != nil {
			return nil, err
		}
		sigs.WriteString(field)
	}
	return sigs.Bytes(), nil
}
