package scheduler

import (
	"reflect"
	"testing"

	"sluice/config"
	"sluice/policy"
)

// TestZeroOptionIsNotReplaced: New fills nothing in (issue 9 item 21): a
// zero with a documented meaning stays zero, any other is refused.
func TestZeroOptionIsNotReplaced(t *testing.T) {
	t.Parallel()
	pol, err := policy.New(policy.OptionsFrom(config.Default()))
	if err != nil {
		t.Fatal(err)
	}
	full := testOptions(newMemQueue(t), pol, &fakeOutbound{}, quietLog())
	if _, err := New(full); err != nil {
		t.Fatalf("options from the default config refused: %v", err)
	}
	kept := []string{"MaxPerConnection", "HoldThreshold", "MaxInlineWait", "SuppressUnknown", "OnAttempt", "Clock", "Logger"}
	refused := []string{"Queue", "Policy", "Outbound", "Hostname", "MaxQueueLifetime", "MaxSessions", "MaxResolving", "ResolveTimeout"}
	zero := func(field string) Options {
		o := full
		f := reflect.ValueOf(&o).Elem().FieldByName(field)
		if !f.IsValid() {
			t.Fatalf("no field %s", field)
		}
		f.SetZero()
		return o
	}
	for _, field := range kept {
		s, err := New(zero(field))
		if err != nil {
			t.Errorf("%s zero refused: %v", field, err)
			continue
		}
		if v := reflect.ValueOf(s.o).FieldByName(field); !v.IsZero() {
			t.Errorf("%s = 0 became %v", field, v)
		}
	}
	for _, field := range refused {
		if _, err := New(zero(field)); err == nil {
			t.Errorf("%s zero accepted (and would have been replaced)", field)
		}
	}
}

// TestOptionsFromConfig: the config's values and the fixed knobs, nothing
// else.
func TestOptionsFromConfig(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	o := OptionsFrom(cfg)
	if o.MaxQueueLifetime != cfg.Delivery.MaxQueueLifetime.D() || o.MaxPerConnection != cfg.Delivery.MaxMessagesPerConnection ||
		o.SuppressUnknown != cfg.Policy.SuppressOnUnknownUser || o.Hostname != cfg.Hostname || o.MaxSessions != cfg.Delivery.MaxSessions ||
		o.MaxResolving != cfg.Delivery.ResolverConcurrency {
		t.Errorf("config values not mapped: %+v", o)
	}
	if o.HoldThreshold != DefaultHoldThreshold || o.MaxInlineWait != DefaultMaxInlineWait || o.ResolveTimeout != DefaultResolveTimeout {
		t.Errorf("fixed knobs not set: %+v", o)
	}
}
