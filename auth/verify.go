package auth

import (
	"bytes"
	"context"
	"io"
	"strings"
)

// maxVerifications caps the signatures verified per message: each costs a
// DNS lookup and a public-key operation, and a client could add hundreds.
const maxVerifications = 5

// verifyDKIM verifies the signatures already present in body. An error is
// returned only when the header cannot be read at all; per-signature results
// are in each verification's Err. Only the first maxVerifications
// signatures are verified.
func verifyDKIM(ctx context.Context, d *dnsCache, body []byte) ([]*dkimVerification, error) {
	return verifyDKIMFrom(ctx, d, bytes.NewReader(body))
}

// verifyExisting verifies the signatures of in. A message without a
// DKIM-Signature field is not read at all: go-msgauth would read its
// whole body to verify nothing.
func verifyExisting(ctx context.Context, d *dnsCache, in Input) ([]*dkimVerification, error) {
	signed := false
	for _, f := range parseHeader(messageHeader(in.Header)) {
		if strings.EqualFold(f.Name, "DKIM-Signature") {
			signed = true
			break
		}
	}
	if !signed {
		return nil, nil
	}
	msg, err := in.Open()
	if err != nil {
		return nil, err
	}
	defer msg.Close()
	return verifyDKIMFrom(ctx, d, msg)
}

// verifyDKIMFrom is verifyDKIM on a stream: our own verifier (dkimverify.go),
// which works around go-msgauth's disagreements with other verifiers.
func verifyDKIMFrom(ctx context.Context, d *dnsCache, msg io.Reader) ([]*dkimVerification, error) {
	return verifyDKIMStream(ctx, d, msg)
}
