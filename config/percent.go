package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Percent is a share written as "3%" or "12.5%", kept as a fraction
// (0.03, 0.125). The sign is required: a bare 3 could be read as 3 % or
// as 300 %.
type Percent float64

// ParsePercent parses a percentage; negative values are refused (the
// key's own range is checked by Validate).
func ParsePercent(s string) (Percent, error) {
	t := strings.TrimSpace(s)
	num, ok := strings.CutSuffix(t, "%")
	num = strings.TrimSpace(num)
	if !ok || num == "" || num[0] == '+' || num[0] == '-' {
		return 0, fmt.Errorf("invalid percentage %q: want e.g. \"3%%\"", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v != v || v > 1e6 {
		return 0, fmt.Errorf("invalid percentage %q: want e.g. \"3%%\"", s)
	}
	return Percent(v / 100), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Percent) UnmarshalText(b []byte) error {
	v, err := ParsePercent(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (p Percent) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// String is the percentage with its sign, shortest form: "3%".
func (p Percent) String() string {
	return strconv.FormatFloat(float64(p)*100, 'f', -1, 64) + "%"
}
