package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"golang.org/x/time/rate"
)

// Rate is an event rate written "N/s", "N/m" or "N/h". The empty string
// means unlimited and decodes to Limit 0; callers must test Unlimited()
// before building a rate.Limiter, since rate.Limit(0) there means "never".
type Rate struct {
	Limit rate.Limit // events per second; 0 = unlimited
	Burst int        // about one second's worth of events, at least 1
}

// ParseRate parses a rate. N may be fractional ("0.5/s") but must be > 0.
func ParseRate(s string) (Rate, error) {
	if s == "" {
		return Rate{}, nil
	}
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("invalid rate %q: want N/s, N/m or N/h", s)
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || !(n > 0) || math.IsInf(n, 0) || num[0] == '+' {
		return Rate{}, fmt.Errorf("invalid rate %q: want N/s, N/m or N/h with N > 0", s)
	}
	var per float64
	switch unit {
	case "s":
		per = 1
	case "m":
		per = 60
	case "h":
		per = 3600
	default:
		return Rate{}, fmt.Errorf("invalid rate %q: unit must be s, m or h", s)
	}
	l := n / per
	// The burst is one second's worth so that a limiter lets a just-opened
	// connection send at once without allowing a flood after a pause.
	burst := 1
	if c := math.Ceil(l); c > 1 {
		burst = int(math.Min(c, 1<<30))
	}
	return Rate{Limit: rate.Limit(l), Burst: burst}, nil
}

// Unlimited reports whether the rate is "" (no cap).
func (r Rate) Unlimited() bool { return r.Limit == 0 }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Rate) UnmarshalText(b []byte) error {
	v, err := ParseRate(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// String renders the rate in the coarsest unit that keeps N whole.
func (r Rate) String() string {
	if r.Unlimited() {
		return ""
	}
	l := float64(r.Limit)
	for _, u := range []struct {
		per  float64
		name string
	}{{1, "s"}, {60, "m"}, {3600, "h"}} {
		if n := l * u.per; math.Abs(n-math.Round(n)) < 1e-9 {
			return strconv.FormatFloat(math.Round(n), 'f', -1, 64) + "/" + u.name
		}
	}
	return strconv.FormatFloat(l, 'g', -1, 64) + "/s"
}
