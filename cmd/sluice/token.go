package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
)

// tokenPrefix marks sluice API tokens, so that secret scanners and
// people can tell one when they see it in a file or a log.
const tokenPrefix = "sluice_"

// newAPIToken returns a new API token (256 random bits) and the
// api_token_hash that names it in the config.
func newAPIToken() (token, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, tokenHash(token), nil
}

// tokenHash is the config form of a token's hash: the SHA-256 of the
// whole token, prefix included (config.ParseTokenHash reads it).
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// runToken: `sluice token new` prints a new token and the config line of
// its hash. The token is stored nowhere: only its hash goes in the
// config, so that a leaked config file gives no access.
func runToken(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 || args[0] != "new" {
		return fmt.Errorf("%w: sluice token new", errUsage)
	}
	token, hash, err := newAPIToken()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, token)
	fmt.Fprintf(stdout, "api_token_hash = %q\n", hash)
	fmt.Fprintln(stderr, "The first line is the token: give it to the application (Authorization: Bearer TOKEN); it is not kept anywhere.\nThe second goes in the application's [[access.user]] of the config; then `sluice reload`.")
	return nil
}
