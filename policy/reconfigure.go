package policy

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"time"
)

// ruleSet is what Classify reads without the policy lock: the operator's
// rules and the hint cap. Reconfigure swaps it whole.
type ruleSet struct {
	rules   []compiledRule
	maxHint time.Duration
}

// compiled are the parts of Options that New and Reconfigure build
// before anything changes: a bad rule or override refuses the whole
// configuration.
type compiled struct {
	rules           *ruleSet
	overrides       map[string]DestinationOptions
	overrideMatches []string
}

func compile(o Options) (compiled, error) {
	c := compiled{rules: &ruleSet{maxHint: o.MaxHint}, overrides: map[string]DestinationOptions{}}
	for i, r := range o.Rules {
		re, err := regexp.Compile(r.Match)
		if err != nil {
			return c, fmt.Errorf("policy: rule %d: %w", i+1, err)
		}
		if !validClass(r.Class) {
			return c, fmt.Errorf("policy: rule %d: unknown class %q", i+1, r.Class)
		}
		if !validScope(r.Scope) {
			return c, fmt.Errorf("policy: rule %d: unknown scope %q", i+1, r.Scope)
		}
		if r.For < 0 {
			return c, fmt.Errorf("policy: rule %d: negative for", i+1)
		}
		c.rules.rules = append(c.rules.rules, compiledRule{n: i + 1, re: re, r: r})
	}
	for _, d := range o.Destinations {
		if d.MaxConcurrency < 0 || d.Rate < 0 {
			return c, fmt.Errorf("policy: destination %q: negative limit", d.Match)
		}
		m := normHost(d.Match)
		if m == "" {
			return c, errors.New("policy: destination with an empty match")
		}
		if _, dup := c.overrides[m]; dup {
			return c, fmt.Errorf("policy: destination %q: more than one override", d.Match)
		}
		c.overrides[m] = d
		c.overrideMatches = append(c.overrideMatches, m)
	}
	slices.Sort(c.overrideMatches)
	return c, nil
}

// fixedOptions are the fields Reconfigure never changes: the seams, and
// the grouping, which names destinations (their learned state is stored
// under those names: changing it needs a restart).
var fixedOptions = map[string]bool{"Now": true, "Rand": true, "Store": true, "Logger": true, "GroupBy": true, "Providers": true}

// ErrNeedsRestart is returned by Reconfigure for a change of the
// grouping (GroupBy, Providers).
var ErrNeedsRestart = errors.New("policy: group_by and the providers re-key destinations: changing them needs a restart")

// Reconfigure applies new settings to a running policy (a config
// reload), all at once or not at all: o is checked as New checks it, and
// on error nothing changes. The seams of o (Now, Rand, Store, Logger) are
// ignored. What each destination learned stays (pauses, cuts, slow
// start, greylist windows); the configured maxima of every destination in
// memory are computed again from the new global limits and
// [[policy.destination]] overrides, and levels above them come down at
// once, as SetLimits does. Runtime limits (SetLimits) keep winning over
// the config until ResetLimits. A destination not in memory takes the new
// settings when it is next read.
func (p *Policy) Reconfigure(o Options) error {
	if err := o.check(); err != nil {
		return err
	}
	c, err := compile(o)
	if err != nil {
		return err
	}
	now := p.o.Now()
	var saves []*pendingSave
	p.mu.Lock()
	if o.GroupBy != p.o.GroupBy || !reflect.DeepEqual(o.Providers, p.o.Providers) {
		p.mu.Unlock()
		return ErrNeedsRestart
	}
	// Field by field, never the whole struct: the seams and the grouping
	// are read without the lock (Now before taking it, Destination
	// always), so they must not be written, even with the same value.
	cur, next := reflect.ValueOf(&p.o).Elem(), reflect.ValueOf(o)
	for i := range cur.NumField() {
		if !fixedOptions[cur.Type().Field(i).Name] {
			cur.Field(i).Set(next.Field(i))
		}
	}
	p.overrides, p.overrideMatches = c.overrides, c.overrideMatches
	p.rules.Store(c.rules)
	for _, d := range p.dests.All() {
		conc, r := p.configLimits(d.name)
		if conc == d.cfgConc && r == d.cfgRate {
			continue
		}
		p.reconfigure(d, now)
		if s := p.snapshotForSave(d); s != nil {
			saves = append(saves, s)
		}
	}
	p.mu.Unlock()
	for _, s := range saves {
		p.save(s)
	}
	return nil
}
