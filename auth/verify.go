package auth

import (
	"bytes"
	"context"
	"io"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// maxVerifications caps the signatures verified per message: each costs a
// DNS lookup and a public-key operation, and a client could add hundreds.
const maxVerifications = 5

// verifyDKIM verifies the signatures already present in body. An error is
// returned only when the header cannot be read at all; per-signature results
// are in each Verification's Err. dkim.ErrTooManySignatures is not an error
// here: the first maxVerifications signatures still count.
func verifyDKIM(ctx context.Context, d *dnsCache, body []byte) ([]*dkim.Verification, error) {
	return verifyDKIMFrom(ctx, d, bytes.NewReader(body))
}

// verifyExisting verifies the signatures of in. A message without a
// DKIM-Signature field is not read at all: go-msgauth would read its
// whole body to verify nothing.
func verifyExisting(ctx context.Context, d *dnsCache, in Input) ([]*dkim.Verification, error) {
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

// verifyDKIMFrom is verifyDKIM on a stream.
func verifyDKIMFrom(ctx context.Context, d *dnsCache, msg io.Reader) ([]*dkim.Verification, error) {
	// endHeader: a headers-only message has an empty body (RFC 6376
	// §3.4.3/§3.4.4), which go-msgauth cannot read on its own.
	vs, err := dkim.VerifyWithOptions(endHeader(msg), &dkim.VerifyOptions{
		LookupTXT:        d.txtFunc(ctx),
		MaxVerifications: maxVerifications,
	})
	if err == dkim.ErrTooManySignatures {
		err = nil
	}
	return vs, err
}
