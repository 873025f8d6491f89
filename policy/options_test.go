package policy

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"sluice/config"
	"sluice/reply"
)

// TestZeroOptionIsNotReplaced: New fills nothing in (issue 9 item 21). A
// zero that has a documented meaning is kept as zero; any other zero is
// refused with an error naming the option.
func TestZeroOptionIsNotReplaced(t *testing.T) {
	t.Parallel()
	kept := []string{"GreylistMargin", "InitialConcurrency", "Rate", "SuppressAfterExpiries"}
	refused := map[string]string{
		"RetryBase": "retry_base", "RetryMax": "retry_max", "GreylistDefault": "greylist_default", "MaxHint": "max_hint",
		"MaxConcurrency": "concurrency", "MinConcurrency": "concurrency", "MinRate": "min_rate", "GroupBy": "group_by",
		"DecreaseWindow": "decrease_window", "ThrottlePause": "throttle_pause", "IncreaseAfter": "increase_after",
		"AlarmShare": "alarm_share", "AlarmWindow": "alarm_window", "AlarmMinDestinations": "alarm_min_destinations",
	}
	zero := func(field string) Options {
		o := testOptions()
		f := reflect.ValueOf(&o).Elem().FieldByName(field)
		if !f.IsValid() {
			t.Fatalf("no field %s", field)
		}
		f.SetZero()
		return o
	}
	for _, field := range kept {
		p, err := New(zero(field))
		if err != nil {
			t.Errorf("%s = 0 refused: %v", field, err)
			continue
		}
		if v := reflect.ValueOf(p.o).FieldByName(field); !v.IsZero() {
			t.Errorf("%s = 0 became %v", field, v)
		}
	}
	for field, key := range refused {
		_, err := New(zero(field))
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s = 0: error %v, want one naming %s", field, err, key)
		}
	}
}

// TestZeroMeansWhatTheConfigSays: the config's documented zeros, from the
// TOML through OptionsFrom to behaviour.
func TestZeroMeansWhatTheConfigSays(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(`
[policy]
suppress_after_expiries = 0
initial_concurrency = 0
greylist_margin = "0s"
rate = ""
max_concurrency = 7
`), "zero.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	o := OptionsFrom(cfg)
	o.Now, o.Rand = c.Now, half
	p := mustNew(t, o)
	for i := range 10 {
		if p.ObserveExpiry("a@x.test") {
			t.Fatalf("suppress_after_expiries = 0 suppressed after %d expiries; documented: never", i+1)
		}
	}
	if got := admitN(p, "d.test", 10); got != 7 {
		t.Errorf("initial_concurrency = 0 admitted %d sessions, want max_concurrency 7 at once", got)
	}
	for i := range 100 {
		if w := p.Reserve("d.test"); w != 0 {
			t.Fatalf("rate = \"\" made message %d wait %v; documented: no cap", i, w)
		}
	}
	hinted := reply.Reply{Stage: reply.StageRcpt, Code: 450, Enhanced: "4.2.0", Text: "Greylisted, try again in 60 seconds"}
	dec := p.Observe("d.test", Outcome{Reply: hinted, Rcpt: "g@d.test", Attempts: 1})
	if want := c.Now().Add(time.Minute); !dec.RetryAt.Equal(want) {
		t.Errorf("greylist_margin = 0: retry at %v, want exactly the hinted %v", dec.RetryAt, want)
	}
}
