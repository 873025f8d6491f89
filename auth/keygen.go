package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// Keygen creates a DKIM key pair, writes the private key as a PKCS#8 PEM
// file at path with mode 0600, and returns the DNS TXT record to publish
// (name and value). keyType is "rsa" (2048 bits, RFC 8301 §3.2) or
// "ed25519" (RFC 8463); "" means rsa, which every verifier understands.
// It refuses to overwrite an existing file: replacing a published key
// breaks every message signed with it still in transit.
func Keygen(domain, selector, keyType, path string) (txtName, txtValue string, err error) {
	domain = normDomain(domain)
	if domain == "" || selector == "" || path == "" {
		return "", "", fmt.Errorf("auth: keygen needs a domain, a selector and a path")
	}
	var key crypto.Signer
	switch keyType {
	case "", "rsa":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return "", "", fmt.Errorf("auth: key type %q: want rsa or ed25519", keyType)
	}
	if err != nil {
		return "", "", fmt.Errorf("auth: generate %s key: %w", keyType, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("auth: encode key: %w", err)
	}
	txtValue, err = publicKeyTXT(key.Public())
	if err != nil {
		return "", "", fmt.Errorf("auth: public key record: %w", err)
	}
	if err := writeNewFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return "", "", err
	}
	return selector + "._domainkey." + domain, txtValue, nil
}

// writeNewFile writes data to a new file with mode 0600, durably: the file
// is created exclusively (no overwrite, no symlink following), synced, and
// its directory synced so the name survives a crash.
func writeNewFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("auth: create key file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("auth: write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("auth: sync key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("auth: close key file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
