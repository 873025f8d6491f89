package policy

import (
	"regexp"
	"strconv"
	"time"
)

// Receivers (greylisters above all) often name the delay they want:
// "try again in 30 seconds", "retry in 5 minutes", "come back in 00:05:00".
// Only a number introduced by "in", "after", "for" or "wait" counts, so
// that version strings and IP addresses in the text are never read as a
// delay.
var (
	hintUnitRE  = regexp.MustCompile(`(?i)\b(?:in|after|for|wait)\s+(\d{1,9})\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)\b`)
	hintClockRE = regexp.MustCompile(`(?i)\b(?:in|after|for|wait)\s+(\d{1,4}):([0-5]\d):([0-5]\d)\b`)
)

// ParseHint returns the delay named in a reply text, capped by max
// (max <= 0 means no cap), or 0 when the text names none.
func ParseHint(text string, max time.Duration) time.Duration {
	var d time.Duration
	if m := hintClockRE.FindStringSubmatch(text); m != nil {
		h, _ := strconv.Atoi(m[1])
		mi, _ := strconv.Atoi(m[2])
		s, _ := strconv.Atoi(m[3])
		d = time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(s)*time.Second
	} else if m := hintUnitRE.FindStringSubmatch(text); m != nil {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return 0
		}
		unit := time.Second
		switch m[2][0] {
		case 'm', 'M':
			unit = time.Minute
		case 'h', 'H':
			unit = time.Hour
		}
		// At most 9 digits times an hour still fits in int64 nanoseconds
		// only up to ~2.5e6 h, so clamp before multiplying.
		if n > int64(1<<62)/int64(unit) {
			d = time.Duration(1 << 62)
		} else {
			d = time.Duration(n) * unit
		}
	}
	if d < 0 {
		d = 0
	}
	if max > 0 && d > max {
		d = max
	}
	return d
}
