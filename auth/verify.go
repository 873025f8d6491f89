package auth

import (
	"bytes"
	"context"

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
	// endHeader: a headers-only message has an empty body (RFC 6376
	// §3.4.3/§3.4.4), which go-msgauth cannot read on its own.
	vs, err := dkim.VerifyWithOptions(endHeader(bytes.NewReader(body)), &dkim.VerifyOptions{
		LookupTXT:        d.txtFunc(ctx),
		MaxVerifications: maxVerifications,
	})
	if err == dkim.ErrTooManySignatures {
		err = nil
	}
	return vs, err
}
