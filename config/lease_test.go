package config

import (
	"testing"
	"time"
)

func TestLeaseTimeoutOutlastsADelivery(t *testing.T) {
	t.Parallel()
	def := Default().Delivery
	if got, want := def.LeaseTimeout(), 92*time.Minute; got != want {
		t.Errorf("default lease = %v, want %v", got, want)
	}
	short := Delivery{DialTimeout: Duration(time.Second), CommandTimeout: Duration(2 * time.Second), DataTimeout: Duration(3 * time.Second)}
	// 2×(1s+5×2s) + 4×2s + 2×3s + 1m
	if got, want := short.LeaseTimeout(), 96*time.Second; got != want {
		t.Errorf("short timeouts: lease = %v, want %v", got, want)
	}
	for _, d := range []Delivery{def, short} {
		if l, one := d.LeaseTimeout(), time.Duration(d.DialTimeout+d.CommandTimeout*8+d.DataTimeout*2); l <= one {
			t.Errorf("lease %v does not outlast one delivery (%v)", l, one)
		}
	}
}
