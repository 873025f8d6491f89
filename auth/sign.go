package auth

import (
	"bytes"
	"fmt"

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

// sign adds one DKIM-Signature per key (relaxed/relaxed, RFC 6376 §3.4.2 and
// §3.4.4, which survive the header refolding receivers do) on top of body.
// It returns the new body and a "domain/selector(algo)" label per signature.
func sign(body []byte, keys []signingKey) ([]byte, []string, error) {
	if len(keys) == 0 {
		return body, nil, nil
	}
	var sigs bytes.Buffer
	labels := make([]string, 0, len(keys))
	for _, k := range keys {
		s, err := dkim.NewSigner(&dkim.SignOptions{
			Domain:                 k.Domain,
			Selector:               k.Selector,
			Signer:                 k.signer,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             signedHeaders,
		})
		if err != nil {
			return body, nil, fmt.Errorf("auth: dkim signer for %s/%s: %w", k.Domain, k.Selector, err)
		}
		if _, err := s.Write(body); err != nil {
			s.Close()
			return body, nil, fmt.Errorf("auth: dkim sign %s/%s: %w", k.Domain, k.Selector, err)
		}
		if err := s.Close(); err != nil {
			return body, nil, fmt.Errorf("auth: dkim sign %s/%s: %w", k.Domain, k.Selector, err)
		}
		sigs.WriteString(s.Signature())
		labels = append(labels, fmt.Sprintf("%s/%s(%s)", k.Domain, k.Selector, k.algo))
	}
	out := make([]byte, 0, sigs.Len()+len(body))
	out = append(out, sigs.Bytes()...)
	return append(out, body...), labels, nil
}
