package resolver

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"sluice/config"
)

// TestOptionsFrom: delivery.resolver names the one server (AD trusted:
// the operator chose it); empty reads resolv.conf; the TTL bounds and the
// pool size come from the config.
func TestOptionsFrom(t *testing.T) {
	t.Parallel()
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver 192.0.2.53\noptions timeout:3 attempts:4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	o, err := OptionsFrom(cfg, conf)
	if err != nil {
		t.Fatal(err)
	}
	want := UpstreamOptions{Servers: []string{"192.0.2.53:53"}, Timeout: 3 * time.Second, Attempts: 4}
	if got := o.Transport.(*Upstream).o; !reflect.DeepEqual(got, want) {
		t.Errorf("from resolv.conf: %+v, want %+v", got, want)
	}
	if o.Workers != 100 || o.MinTTL != 5*time.Second || o.MaxTTL != 24*time.Hour || o.MaxEntries != DefaultMaxEntries {
		t.Errorf("options %+v", o)
	}
	cfg.Delivery.Resolver = "[::1]:5353"
	o, err = OptionsFrom(cfg, conf)
	if err != nil {
		t.Fatal(err)
	}
	want = UpstreamOptions{Servers: []string{"[::1]:5353"}, Timeout: DefaultTimeout, Attempts: DefaultAttempts, TrustAD: true}
	if got := o.Transport.(*Upstream).o; !reflect.DeepEqual(got, want) {
		t.Errorf("delivery.resolver: %+v, want %+v", got, want)
	}
	if _, err := New(o); err != nil {
		t.Fatal(err)
	}
}
