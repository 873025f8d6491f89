// Package testca makes the certificates of the TLS policy tests: a test
// certificate authority (crypto/x509, made in the test, never on disk
// unless the test writes its PEM for delivery.ca_file) and leaf
// certificates it signs, with chosen names and validity, plus
// self-signed ones. ECDSA P-256: quick to generate under -race.
package testca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"sync/atomic"
	"time"
)

// CA is a test certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	Pool *x509.CertPool // holds Cert alone
	PEM  []byte         // Cert, PEM-encoded (for delivery.ca_file)
}

var serial atomic.Int64

func template(cn string, notBefore, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"sluice test"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
	}
}

// New returns a CA valid from an hour before now for ten years.
func New(now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	t := template("sluice test CA", now.Add(-time.Hour), now.AddDate(10, 0, 0))
	t.IsCA, t.BasicConstraintsValid = true, true
	t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, t, t, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, Key: key, Pool: pool, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Issue signs a server certificate for names (DNS names or IP
// addresses) valid over [notBefore, notAfter).
func (ca *CA) Issue(notBefore, notAfter time.Time, names ...string) (tls.Certificate, error) {
	return issue(ca.Cert, ca.Key, notBefore, notAfter, names)
}

// SelfSigned is a server certificate for names that signs itself.
func SelfSigned(now time.Time, names ...string) (tls.Certificate, error) {
	return issue(nil, nil, now.Add(-time.Hour), now.AddDate(1, 0, 0), names)
}

func issue(parent *x509.Certificate, parentKey *ecdsa.PrivateKey, notBefore, notAfter time.Time, names []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	cn := "unnamed"
	if len(names) > 0 {
		cn = names[0]
	}
	t := template(cn, notBefore, notAfter)
	t.KeyUsage = x509.KeyUsageDigitalSignature
	t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			t.IPAddresses = append(t.IPAddresses, ip)
		} else {
			t.DNSNames = append(t.DNSNames, n)
		}
	}
	if parent == nil {
		parent, parentKey = t, key
	}
	der, err := x509.CreateCertificate(rand.Reader, t, parent, &key.PublicKey, parentKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
