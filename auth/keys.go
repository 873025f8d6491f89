package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// loadKey reads a PEM private key: RSA in PKCS#1 or PKCS#8, Ed25519 in
// PKCS#8 (RFC 8410), the forms Keygen and openssl write.
func loadKey(kc KeyConfig) (signingKey, error) {
	if kc.Domain == "" || kc.Selector == "" || kc.KeyFile == "" {
		return signingKey{}, fmt.Errorf("auth: dkim key needs domain, selector and key_file (got %q, %q, %q)", kc.Domain, kc.Selector, kc.KeyFile)
	}
	kc.Domain = normDomain(kc.Domain)
	data, err := os.ReadFile(kc.KeyFile)
	if err != nil {
		return signingKey{}, fmt.Errorf("auth: dkim key for %s: %w", kc.Domain, err)
	}
	signer, err := parsePrivateKey(data)
	if err != nil {
		return signingKey{}, fmt.Errorf("auth: dkim key %s for %s: %w", kc.KeyFile, kc.Domain, err)
	}
	k := signingKey{KeyConfig: kc, signer: signer, algo: keyAlgo(signer.Public())}
	return k, nil
}

func parsePrivateKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		switch k := k.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		default:
			return nil, fmt.Errorf("unsupported key type %T (want RSA or Ed25519)", k)
		}
	default:
		return nil, fmt.Errorf("unsupported PEM block %q", block.Type)
	}
}

// checkKeyStrength refuses RSA keys below 1024 bits: RFC 8301 §3.2 says
// verifiers must not accept them, so such a signature only hurts.
func checkKeyStrength(k signingKey) error {
	if pub, ok := k.signer.Public().(*rsa.PublicKey); ok && pub.N.BitLen() < 1024 {
		return fmt.Errorf("auth: dkim key %s is RSA-%d; RFC 8301 §3.2 requires at least 1024 bits (use 2048)", k.KeyFile, pub.N.BitLen())
	}
	return nil
}

func keyAlgo(pub crypto.PublicKey) string {
	switch pub.(type) {
	case *rsa.PublicKey:
		return "rsa"
	case ed25519.PublicKey:
		return "ed25519"
	}
	return "unknown"
}

// publicKeyTXT renders the DKIM key record of RFC 6376 §3.6.1. RSA keys
// publish the SubjectPublicKeyInfo; Ed25519 keys publish the bare 32-byte
// key (RFC 8463 §4.2).
func publicKeyTXT(pub crypto.PublicKey) (string, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(p)
		if err != nil {
			return "", err
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(p), nil
	}
	return "", fmt.Errorf("unsupported public key %T", pub)
}

// parseKeyRecord extracts the public key from a DKIM key record. It accepts
// an RSA key as SubjectPublicKeyInfo or as a bare PKCS#1 RSAPublicKey, which
// some publishers use.
func parseKeyRecord(txt string) (crypto.PublicKey, error) {
	tags := keyRecordTags(txt)
	if v, ok := tags["v"]; ok && v != "DKIM1" {
		return nil, fmt.Errorf("v=%s is not DKIM1", v)
	}
	p, ok := tags["p"]
	if !ok {
		return nil, errors.New("no p= tag")
	}
	if p == "" {
		return nil, errors.New("key revoked (empty p=)")
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return nil, fmt.Errorf("p= is not base64: %w", err)
	}
	switch k := tags["k"]; k {
	case "", "rsa":
		if pub, err := x509.ParsePKIXPublicKey(der); err == nil {
			if rp, ok := pub.(*rsa.PublicKey); ok {
				return rp, nil
			}
			return nil, fmt.Errorf("p= holds %T, not RSA", pub)
		}
		rp, err := x509.ParsePKCS1PublicKey(der)
		if err != nil {
			return nil, fmt.Errorf("p= is not an RSA public key: %w", err)
		}
		return rp, nil
	case "ed25519":
		if len(der) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("ed25519 p= has %d bytes, want %d", len(der), ed25519.PublicKeySize)
		}
		return ed25519.PublicKey(der), nil
	default:
		return nil, fmt.Errorf("unknown key type k=%s", k)
	}
}

// keyRecordTags splits a key record into its tags, white space removed
// from the values (RFC 6376 §3.6.1 values are lists and base64, where FWS
// carries no meaning).
func keyRecordTags(txt string) map[string]string {
	tags := map[string]string{}
	for _, part := range strings.Split(txt, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		tags[strings.TrimSpace(k)] = strings.Join(strings.Fields(v), "")
	}
	return tags
}

// keysFor returns the keys that sign mail From domain: the domain's own
// keys, else the organisational domain's keys configured with Subdomains.
// At most one key per algorithm, so a message carries at most one RSA and
// one Ed25519 signature (RFC 8463 §3 recommends both during transition).
func (c *Checker) keysFor(domain string) []signingKey {
	domain = normDomain(domain)
	pick := func(match func(signingKey) bool) []signingKey {
		var out []signingKey
		seen := map[string]bool{}
		for _, k := range c.keys {
			if match(k) && !seen[k.algo] {
				seen[k.algo] = true
				out = append(out, k)
			}
		}
		return out
	}
	if ks := pick(func(k signingKey) bool { return k.Domain == domain }); len(ks) > 0 {
		return ks
	}
	org := OrgDomain(domain)
	return pick(func(k signingKey) bool {
		return k.Subdomains && (k.Domain == org || strings.HasSuffix(domain, "."+k.Domain))
	})
}

func normDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
}
