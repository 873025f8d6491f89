package policy

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/time/rate"

	"sluice/config"
)

// Options configure a Policy. They are complete: New fills nothing in
// (the defaults live in the config layer, config.Default; OptionsFrom maps
// them) and refuses what makes no sense. Zero means what the config
// documents for the few fields where it has a meaning, noted below.
type Options struct {
	RetryBase, RetryMax time.Duration // recipient backoff base..cap; also destination pause steps
	GreylistDefault     time.Duration // greylist reply with no delay and nothing learned
	GreylistMargin      time.Duration // added after the window; 0 = none
	MaxHint             time.Duration // cap on delay hints
	MaxConcurrency      int           // per destination
	MinConcurrency      int           // floor of cuts
	// InitialConcurrency > 0 turns on slow start: a destination with no
	// history starts with this many sessions and gains one per success
	// (doubling per round trip) until MaxConcurrency or the first
	// refusal. 0 = start at MaxConcurrency.
	InitialConcurrency int
	Rate               rate.Limit // per destination; 0 = no cap until throttled
	// MinRate is the floor of multiplicative rate cuts, > 0 (a cut to 0
	// would lift the cap). The config's 1 message per second is low
	// enough to calm any receiver we have seen, high enough that a
	// backlog of thousands drains within the hour.
	MinRate      rate.Limit
	GroupBy      string // "domain" | "mx"
	Providers    []Provider
	Destinations []DestinationOptions
	Rules        []Rule // config rules, first match wins, before built-ins
	// DecreaseWindow: at most one multiplicative decrease per window
	// (roughly a few SMTP round trips: the refusals of one burst of
	// sessions arrive within it). Refusals seen while the destination is
	// already paused never cut again either.
	DecreaseWindow time.Duration
	ThrottlePause  time.Duration // first pause after a throttle; ×2 per step with jitter, cap RetryMax
	// IncreaseAfter consecutive successes give +1 concurrency and one rate
	// step up. A rate step is +10% of the current rate, at least MinRate.
	IncreaseAfter         int
	AlarmShare            float64 // sender-wide alarm share, in (0, 1]
	AlarmWindow           time.Duration
	AlarmMinDestinations  int
	SuppressAfterExpiries int // consecutive expiries before suppression; 0 = never

	Now    func() time.Time // nil = time.Now
	Rand   func() float64   // [0,1) for jitter; nil = math/rand/v2
	Store  StateStore       // nil = no persistence
	Logger *slog.Logger     // nil = slog.Default()
}

// OptionsFrom maps the [policy] section of cfg onto Options; the caller
// adds Store, Logger and, in tests, Now and Rand.
func OptionsFrom(cfg *config.Config) Options {
	p := cfg.Policy
	o := Options{
		RetryBase:             time.Duration(p.RetryBase),
		RetryMax:              time.Duration(p.RetryMax),
		GreylistDefault:       time.Duration(p.GreylistDefault),
		GreylistMargin:        time.Duration(p.GreylistMargin),
		MaxHint:               time.Duration(p.MaxHint),
		MaxConcurrency:        p.MaxConcurrency,
		MinConcurrency:        p.MinConcurrency,
		InitialConcurrency:    p.InitialConcurrency,
		Rate:                  p.Rate.Limit,
		MinRate:               p.MinRate.Limit,
		GroupBy:               p.GroupBy,
		DecreaseWindow:        time.Duration(p.DecreaseWindow),
		ThrottlePause:         time.Duration(p.ThrottlePause),
		IncreaseAfter:         p.IncreaseAfter,
		AlarmShare:            p.AlarmShare,
		AlarmWindow:           time.Duration(p.AlarmWindow),
		AlarmMinDestinations:  p.AlarmMinDestinations,
		SuppressAfterExpiries: p.SuppressAfterExpiries,
	}
	for _, d := range p.Destinations {
		o.Destinations = append(o.Destinations, DestinationOptions{Match: d.Match, MaxConcurrency: d.MaxConcurrency, Rate: d.Rate.Limit})
	}
	for _, r := range p.Rules {
		o.Rules = append(o.Rules, Rule{Match: r.Match, Class: Class(r.Class), For: time.Duration(r.For), Scope: Scope(r.Scope)})
	}
	for _, pr := range p.Providers {
		o.Providers = append(o.Providers, Provider{Name: pr.Name, Suffixes: pr.Suffixes})
	}
	return o
}

// check refuses options that make no sense; it changes nothing.
func (o *Options) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("policy: "+format, args...)) }
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"retry_base", o.RetryBase}, {"retry_max", o.RetryMax}, {"greylist_default", o.GreylistDefault},
		{"max_hint", o.MaxHint}, {"decrease_window", o.DecreaseWindow}, {"throttle_pause", o.ThrottlePause},
		{"alarm_window", o.AlarmWindow},
	} {
		if d.v <= 0 {
			bad("%s must be positive, not %v", d.name, d.v)
		}
	}
	if o.GreylistMargin < 0 {
		bad("greylist_margin must not be negative")
	}
	if o.RetryMax < o.RetryBase {
		bad("retry_max %v below retry_base %v", o.RetryMax, o.RetryBase)
	}
	if o.MinConcurrency < 1 || o.MaxConcurrency < o.MinConcurrency {
		bad("bad concurrency bounds %d..%d", o.MinConcurrency, o.MaxConcurrency)
	}
	if o.InitialConcurrency < 0 {
		bad("negative initial_concurrency")
	}
	if o.Rate < 0 || o.MinRate <= 0 {
		bad("rate must not be negative and min_rate must be positive")
	}
	if o.Rate > 0 && o.MinRate > o.Rate {
		bad("min_rate %v above rate %v", float64(o.MinRate), float64(o.Rate))
	}
	if o.GroupBy != "mx" && o.GroupBy != "domain" {
		bad("unknown group_by %q", o.GroupBy)
	}
	if o.IncreaseAfter < 1 {
		bad("increase_after must be at least 1")
	}
	if !(o.AlarmShare > 0 && o.AlarmShare <= 1) {
		bad("alarm_share must be in (0, 1], not %v", o.AlarmShare)
	}
	if o.AlarmMinDestinations < 1 {
		bad("alarm_min_destinations must be at least 1")
	}
	if o.SuppressAfterExpiries < 0 {
		bad("negative suppress_after_expiries (0 = never)")
	}
	return errors.Join(errs...)
}
