package main

import (
	"io"
	"log/slog"
	"testing"

	"sluice/config"
	"sluice/relay/inbound"
)

// TestNewCheckerLintModes: lint.mode off builds no lint check (nothing is
// read, counted or kept); warn and enforce add it after the auth
// pre-check, which signs first.
func TestNewCheckerLintModes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		auth, lint string
		want       []string // the checks, in order
	}{
		{"off", "off", nil},
		{"off", "warn", []string{"lint"}},
		{"warn", "off", []string{"auth"}},
		{"warn", "enforce", []string{"auth", "lint"}},
	} {
		cfg := config.Default()
		cfg.Auth.Mode, cfg.Lint.Mode = tc.auth, tc.lint
		d := &daemon{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil)), lint: newLintState(cfg)}
		var err error
		if d.resolver, err = newResolver(cfg); err != nil {
			t.Fatal(err)
		}
		c, err := d.newChecker(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		kind := func(c inbound.Checker) string {
			switch c.(type) {
			case authChecker:
				return "auth"
			case lintChecker:
				return "lint"
			}
			return "?"
		}
		switch c := c.(type) {
		case nil:
		case inbound.Checks:
			for _, x := range c {
				got = append(got, kind(x))
			}
		default:
			got = append(got, kind(c))
		}
		if len(got) != len(tc.want) || (len(got) > 0 && (got[0] != tc.want[0] || got[len(got)-1] != tc.want[len(tc.want)-1])) {
			t.Errorf("auth %s, lint %s: checks %v, want %v", tc.auth, tc.lint, got, tc.want)
		}
	}
}
