package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as a Go duration string, plus a "d"
// suffix for days ("5d", "1d12h"), because queue lifetimes and retention
// are naturally counted in days. The empty string decodes to 0, which the
// keys that allow it document as "unset".
type Duration time.Duration

// ParseDuration parses a Go duration with an optional "d" (24h) unit.
// Negative durations are refused: no key has a use for them.
func ParseDuration(s string) (Duration, error) {
	if s == "" {
		return 0, nil
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("invalid duration %q: negative", s)
	}
	var days float64
	var rest strings.Builder
	i := 0
	for i < len(s) {
		j := i
		for j < len(s) && (s[j] == '.' || (s[j] >= '0' && s[j] <= '9')) {
			j++
		}
		k := j
		for k < len(s) && !(s[k] == '.' || (s[k] >= '0' && s[k] <= '9')) {
			k++
		}
		num, unit := s[i:j], s[j:k]
		if num == "" {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		if unit == "d" {
			n, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
			days += n
		} else {
			rest.WriteString(s[i:k])
		}
		i = k
	}
	var d time.Duration
	if rest.Len() > 0 {
		var err error
		d, err = time.ParseDuration(rest.String())
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
	}
	const maxDays = float64(1<<63-1) / float64(24*time.Hour)
	if days > maxDays-float64(d)/float64(24*time.Hour) {
		return 0, fmt.Errorf("invalid duration %q: too large", s)
	}
	return Duration(d + time.Duration(days*float64(24*time.Hour))), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText implements encoding.TextMarshaler; whole days print as "Nd".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String renders whole days as "Nd" and everything else as a Go duration.
func (d Duration) String() string {
	td := time.Duration(d)
	if td == 0 {
		return "0s"
	}
	if td%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(td/(24*time.Hour)), 10) + "d"
	}
	// Trim the zero tails time.Duration prints ("4h0m0s" -> "4h").
	s := td.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
