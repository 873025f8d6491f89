package auth

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// TestZeroOptionIsNotReplaced: New fills nothing in but the seams (issue 9
// item 21): a zero duration or an empty mode is refused, where it used to
// become 2 s, 5 min, 30 s or "warn".
func TestZeroOptionIsNotReplaced(t *testing.T) {
	t.Parallel()
	if _, err := New(testOptions()); err != nil {
		t.Fatalf("options from the default config refused: %v", err)
	}
	for name, f := range map[string]func(*Options){
		"DNSTimeout":       func(o *Options) { o.DNSTimeout = 0 },
		"CacheTTL":         func(o *Options) { o.CacheTTL = 0 },
		"ResolverCooldown": func(o *Options) { o.ResolverCooldown = 0 },
		"Mode":             func(o *Options) { o.Mode = "" },
	} {
		if _, err := New(testOptions(f)); err == nil {
			t.Errorf("%s zero accepted (and would have been replaced by a default)", name)
		}
	}
	// The seams have nil fallbacks; the durations are kept as given.
	c, err := New(testOptions(func(o *Options) { o.Resolver, o.Now, o.Logger, o.DNSTimeout = nil, nil, nil, 3*time.Second }))
	if err != nil {
		t.Fatal(err)
	}
	if c.dns == nil || c.now == nil || c.log == nil {
		t.Error("nil seams not given their fallbacks")
	}
}

// TestCountersOutliveAChecker: the checkers a config reload replaces
// share one set of counters, so the exported counters never go back.
func TestCountersOutliveAChecker(t *testing.T) {
	t.Parallel()
	shared := NewCounters()
	in := Input{MailFrom: "a@example.test", Header: []byte("From: a@example.test\r\n\r\n"),
		Open: func() (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader("From: a@example.test\r\n\r\nx\r\n")), nil
		}}
	for range 2 {
		c, err := New(testOptions(func(o *Options) { o.Mode, o.Counters = ModeOff, shared }))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Check(context.Background(), in); err != nil {
			t.Fatal(err)
		}
		if got := c.Verdicts()["off"]; got == 0 {
			t.Errorf("checker's own view: %v", c.Verdicts())
		}
	}
	if got := shared.Snapshot()["off"]; got != 2 {
		t.Errorf("off counted %d times across two checkers, want 2", got)
	}
}
