package dane

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// Match reports whether cert matches r's selector, matching type and
// data (RFC 6698 §2.1.2, §2.1.3). An unusable record matches nothing.
func Match(r Record, cert *x509.Certificate) bool {
	if !Usable(r) || cert == nil {
		return false
	}
	var sel []byte
	switch r.Selector {
	case SelectorCert:
		sel = cert.Raw
	case SelectorSPKI:
		sel = cert.RawSubjectPublicKeyInfo
	}
	switch r.Matching {
	case MatchFull:
		return bytes.Equal(sel, r.Data)
	case MatchSHA256:
		h := sha256.Sum256(sel)
		return bytes.Equal(h[:], r.Data)
	case MatchSHA512:
		h := sha512.Sum512(sel)
		return bytes.Equal(h[:], r.Data)
	}
	return false
}

// Verify checks a server's chain (leaf first, as presented) against res
// at time now. It returns nil when DANE does not demand authentication
// (None, EncryptOnly), and otherwise when one usable record matches:
//   - DANE-EE(3) matches the leaf; no name check and no validity dates
//     (RFC 7672 §3.1.1: the key is pinned by DNSSEC, names and expiry
//     add nothing but ways to fail).
//   - DANE-TA(2) matches a certificate of the chain the server sent
//     (RFC 7672 §3.1.2: servers must include it), which then anchors an
//     ordinary chain check of the leaf, dates included, and the leaf
//     must carry one of res.Names (RFC 7672 §3.2.2; a wildcard in the
//     leftmost label is accepted, §3.2.3).
func Verify(res Result, chain []*x509.Certificate, now time.Time) error {
	if res.Status != Authenticate {
		return nil
	}
	if len(chain) == 0 {
		return errors.New("dane: the server sent no certificate")
	}
	leaf := chain[0]
	var taErr error
	for _, r := range res.Records {
		switch r.Usage {
		case UsageDANEEE:
			if Match(r, leaf) {
				return nil
			}
		case UsageDANETA:
			for _, c := range chain {
				if !Match(r, c) {
					continue
				}
				err := verifyTA(c, chain, res.Names, now)
				if err == nil {
					return nil
				}
				taErr = err
			}
		}
	}
	if taErr != nil {
		return fmt.Errorf("%w (a DANE-TA(2) record matched: %v)", ErrNoMatch, taErr)
	}
	return ErrNoMatch
}

// verifyTA checks the leaf up to the trust anchor ta, and its name.
func verifyTA(ta *x509.Certificate, chain []*x509.Certificate, names []string, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(ta)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		// Server certificates for SMTP need not say serverAuth (some
		// private CAs leave EKU out entirely); the TLSA record is the
		// statement of intent.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	if chain[0].Equal(ta) {
		// The leaf itself is the trust anchor: still a name check, and
		// its own dates (RFC 7672 §3.1.2 treats it as TA, not EE).
		if now.Before(ta.NotBefore) || now.After(ta.NotAfter) {
			return errors.New("the certificate is outside its validity period")
		}
	} else if _, err := chain[0].Verify(opts); err != nil {
		return err
	}
	var nameErr error
	for _, n := range names {
		if nameErr = chain[0].VerifyHostname(n); nameErr == nil {
			return nil
		}
	}
	if nameErr == nil {
		nameErr = errors.New("no reference identifier")
	}
	return nameErr
}

// Config returns a copy of base (nil: an empty config) that checks the
// server against res instead of the Web PKI: InsecureSkipVerify turns the
// library's own checks off, and VerifyConnection does ours (Verify) at
// handshake time, so a failure aborts the handshake. ServerName is the
// MX host name for SNI (RFC 7672 §8.1: clients send it).
func Config(base *tls.Config, res Result, serverName string, now func() time.Time) *tls.Config {
	var cfg *tls.Config
	if base != nil {
		cfg = base.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if now == nil {
		now = time.Now
	}
	cfg.ServerName = serverName
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		return Verify(res, cs.PeerCertificates, now())
	}
	return cfg
}
