// Package config loads sluice's TOML configuration strictly: an unknown
// key or a bad value is an error naming the file, the line and the key,
// and the relay does not start (design.md §3).
//
// A *Config returned by Load, Parse or Default is fully validated, its
// relative paths are absolute, and the "" = "inherit" keys that depend on
// another key (policy.throttle_pause, route and smarthost tls) are
// resolved. The package holds no global mutable state: every function is
// safe to call concurrently. A Config is a plain value; callers that share
// one between goroutines must not modify it.
package config

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	toml "github.com/pelletier/go-toml/v2"
)

//go:embed default.toml
var defaultTOML []byte

// Default returns the embedded defaults, with relative paths resolved
// against the working directory.
func Default() *Config {
	c, err := Parse(nil, "default.toml", "")
	if err != nil {
		// The embedded file is tested; failing here is a build defect.
		panic(fmt.Sprintf("config: embedded defaults are invalid: %v", err))
	}
	return c
}

// Load reads the file at path, overlays it on the defaults, and resolves
// relative paths against the file's directory.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		// The path names the file once: "FILE: cannot read: no such
		// file or directory", never "config: open FILE: ...".
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read: %v", err), Err: err}
	}
	return Parse(data, path, filepath.Dir(path))
}

// Hash is the SHA-256 (hex) of a config file's bytes.
func Hash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// DefaultHash is the Hash of the embedded defaults, in force when the
// daemon runs without --config.
func DefaultHash() string { return Hash(defaultTOML) }

// Located is err as a configuration error at key in the file path, whose
// bytes are data: for the problems found after the file parsed (a
// certificate or a DKIM key that cannot be used), so that they name the
// file, the line and the key like every other config error.
func Located(path string, data []byte, key string, err error) *Error {
	return &Error{File: path, Line: locateKeys(data).find(key), Key: key, Msg: err.Error(), Err: err}
}

// Parse decodes data (named name in error messages) over the defaults,
// resolves relative paths against baseDir ("" = the working directory),
// and validates the result. Errors are *Error values, joined with
// errors.Join when validation finds several problems.
func Parse(data []byte, name, baseDir string) (*Config, error) {
	c := new(Config)
	if err := decode(defaultTOML, "default.toml", c); err != nil {
		return nil, err
	}
	if err := decode(data, name, c); err != nil {
		return nil, err
	}
	if baseDir == "" {
		baseDir = "."
	}
	abs, err := filepath.Abs(baseDir)
	if err != nil {
		return nil, fmt.Errorf("config: base directory: %w", err)
	}
	c.resolvePaths(abs)
	c.webhookDefaults()
	errs := c.validate()
	if len(errs) == 0 {
		errs = c.readSecrets()
	}
	if len(errs) > 0 {
		lines := locateKeys(data)
		joined := make([]error, len(errs))
		for i, e := range errs {
			e.File = name
			e.Line = lines.find(e.Key)
			joined[i] = e
		}
		return nil, errors.Join(joined...)
	}
	c.inherit()
	return c, nil
}

// decode overlays one TOML document on c. Strict mode turns unknown keys
// into errors: a typo like "listen.smpt" must not silently fall back to a
// default.
func decode(data []byte, name string, c *Config) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	d := toml.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	// Checked first: go-toml reports a bad integer-as-text value without
	// its position.
	if err := checkStringValues(data, name); err != nil {
		return err
	}
	if err := d.Decode(c); err != nil {
		return decodeError(name, err)
	}
	return nil
}
