package inbound

import (
	"testing"

	"sluice/config"
)

// TestZeroInflightBytesIsNoBound: limits.max_inflight_bytes = "0" is
// documented as "no bound": from the config through OptionsFrom,
// any number of transactions of any size fit.
func TestZeroInflightBytesIsNoBound(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte("[limits]\nmax_inflight_bytes = \"0\"\n"), "zero.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o, err := OptionsFrom(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if !o.InFlight.reserve(1 << 40) {
			t.Fatalf("transaction %d refused with max_inflight_bytes = 0", i+1)
		}
	}
}
