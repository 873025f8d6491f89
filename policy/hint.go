package policy

import (
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Receivers (greylisters and rate limiters above all) often name the
// delay they want, in many words: "try again in 30 seconds", "retry in
// 1.5 minutes", "come back in 00:05:00", "in a couple of hours",
// "tomorrow". ParseHint reads them all; docs/design-notes.md ("Reply
// classification") lists the values given to the vague ones.
//
// A number counts only when introduced by "in", "after", "for" or "wait"
// (optionally qualified: "at least", "another"...), so that version
// strings, IP addresses and enhanced codes in the text are never read as
// a delay. The vague phrases ("a couple of hours", "half an hour",
// "tomorrow") are distinctive enough to count anywhere. With several
// delays in one text the leftmost wins; of overlapping ones the longest
// ("in an hour and a half" over "in an hour").

// hintUnit is the unit spellings, each longer form before its prefix so
// that the alternation prefers it.
const hintUnit = `(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d)`

// hintWords are the spelled-out numbers a receiver writes ("in ten
// minutes"); "a"/"an" is one.
var hintWords = map[string]float64{
	"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
	"eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
	"thirty": 30, "forty": 40, "forty-five": 45, "fifty": 50, "sixty": 60, "ninety": 90,
}

const (
	// a number in digits, or in words ending at a word boundary, so that
	// "in as little as" is not "in a s".
	hintNum   = `(\d{1,9}(?:\.\d{1,3})?|(?:an|a|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty-five|forty|fifty|sixty|ninety)\b)`
	hintIntro = `\b(?:in|after|for|wait)\s+(?:(?:at\s+least|about|around|approximately|approx\.?|roughly|another|some|up\s+to|over|a\s+further|the\s+next)\s+)?`
)

var (
	hintClockRE = regexp.MustCompile(`(?i)\b(?:in|after|for|wait)\s+(\d{1,4}):([0-5]\d):([0-5]\d)\b`)
	// "in 5 minutes", "in 5-10 minutes", "in two or three minutes", "in
	// 2 and a half minutes", "in an hour and a half".
	hintNumRE = regexp.MustCompile(`(?i)` + hintIntro + hintNum + `(?:\s*(?:-|–|to|or)\s*` + hintNum + `)?` +
		`(\s+and\s+a\s+half)?\s*` + hintUnit + `(\s+and\s+a\s+half\b)?`)
	// the rest of a compound: "1 hour 30 minutes", "1h30m", "2 minutes and 30 seconds".
	hintMoreRE = regexp.MustCompile(`(?i)^\s*(?:,\s*|and\s+)?(\d{1,9}(?:\.\d{1,3})?)\s*` + hintUnit)
	// the vague forms, each with its value in units of its second group
	// (or a fixed duration).
	hintVague = []struct {
		re    *regexp.Regexp
		n     float64       // times the unit matched in group 1
		fixed time.Duration // when there is no unit group
	}{
		{re: regexp.MustCompile(`(?i)\bhalf\s+an?\s+(hour|minute|day)\b`), n: 0.5},
		{re: regexp.MustCompile(`(?i)\b(?:a\s+)?quarter\s+(?:of\s+)?an\s+(hour)\b|\bquarter[- ](hour)\b`), n: 0.25},
		{re: regexp.MustCompile(`(?i)\b(?:a\s+)?couple\s+(?:of\s+|more\s+)*` + hintUnit + `\b`), n: 2},
		{re: regexp.MustCompile(`(?i)\b(?:a\s+)?few\s+(?:more\s+)?` + hintUnit + `\b`), n: 3},
		{re: regexp.MustCompile(`(?i)\bseveral\s+(?:more\s+)?` + hintUnit + `\b`), n: 5},
		{re: regexp.MustCompile(`(?i)\bnext\s+(hour|day)\b`), n: 1},
		{re: regexp.MustCompile(`(?i)\btomorrow\b`), fixed: 24 * time.Hour},
	}
)

// unitEnds reports whether a unit matched up to i ends its word there: at
// the end, before a non-letter, or before the next number of a compound
// ("1h30m"). RE2 has no lookahead, so this is checked here: "in 2 m" is
// not the start of "in 2 messages".
func unitEnds(text string, i int) bool {
	if i >= len(text) {
		return true
	}
	c := text[i] | 0x20
	return !(c >= 'a' && c <= 'z') && text[i] != '_'
}

// hintUnitOf gives the duration of one unit as spelled.
func hintUnitOf(u string) time.Duration {
	switch strings.ToLower(u)[0] {
	case 'm':
		return time.Minute
	case 'h':
		return time.Hour
	case 'd':
		return 24 * time.Hour
	}
	return time.Second
}

// hintNumber reads a number as matched by hintNum (digits, maybe with a
// decimal part, or a word).
func hintNumber(s string) (float64, bool) {
	s = strings.ToLower(s)
	if v, ok := hintWords[s]; ok {
		return v, true
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil && v >= 0
}

// hintDur multiplies without overflow: beyond ~146 years it clamps.
func hintDur(n float64, unit time.Duration) time.Duration {
	f := n * float64(unit)
	if f >= float64(1<<62) || math.IsNaN(f) {
		return time.Duration(1 << 62)
	}
	if f < 0 {
		return 0
	}
	return time.Duration(f)
}

type hintMatch struct {
	start, end int
	d          time.Duration
}

// ParseHint returns the delay named in a reply text, capped by max
// (max <= 0 means no cap), or 0 when the text names none.
func ParseHint(text string, max time.Duration) time.Duration {
	var found []hintMatch
	for _, m := range hintClockRE.FindAllStringSubmatchIndex(text, -1) {
		h, _ := strconv.Atoi(text[m[2]:m[3]])
		mi, _ := strconv.Atoi(text[m[4]:m[5]])
		s, _ := strconv.Atoi(text[m[6]:m[7]])
		found = append(found, hintMatch{m[0], m[1], time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(s)*time.Second})
	}
	for _, m := range hintNumRE.FindAllStringSubmatchIndex(text, -1) {
		if d, end, ok := numericHint(text, m); ok {
			found = append(found, hintMatch{m[0], end, d})
		}
	}
	for _, v := range hintVague {
		for _, m := range v.re.FindAllStringSubmatchIndex(text, -1) {
			d := v.fixed
			for g := 2; g+1 < len(m); g += 2 {
				if m[g] >= 0 {
					d = hintDur(v.n, hintUnitOf(text[m[g]:m[g+1]]))
					break
				}
			}
			found = append(found, hintMatch{m[0], m[1], d})
		}
	}
	if len(found) == 0 {
		return 0
	}
	// The leftmost delay wins; of those overlapping it, the one reaching
	// furthest ("in an hour and a half" over "in an hour").
	sort.Slice(found, func(i, j int) bool {
		if found[i].start != found[j].start {
			return found[i].start < found[j].start
		}
		return found[i].end > found[j].end
	})
	best := found[0]
	for _, f := range found[1:] {
		if f.start >= best.end {
			break
		}
		if f.end > best.end {
			best = f
		}
	}
	d := best.d
	if d < 0 {
		d = 0
	}
	if max > 0 && d > max {
		d = max
	}
	return d
}

// numericHint evaluates one hintNumRE match m (submatch indexes): the
// number (the upper one of a range), any "and a half", the unit, and the
// rest of a compound. It returns the duration and where the match ends.
func numericHint(text string, m []int) (time.Duration, int, bool) {
	grp := func(i int) string {
		if m[2*i] < 0 {
			return ""
		}
		return text[m[2*i]:m[2*i+1]]
	}
	num, upper, half1, unit, half2 := grp(1), grp(2), grp(3), grp(4), grp(5)
	n, ok := hintNumber(num)
	if !ok {
		return 0, 0, false
	}
	if upper != "" {
		// A range ("5-10 minutes"): the receiver says it will be ready by
		// the upper end.
		if u, ok := hintNumber(upper); ok && u > n {
			n = u
		}
	}
	if !unitEnds(text, m[9]) {
		return 0, 0, false
	}
	u := hintUnitOf(unit)
	low := strings.ToLower(num)
	if (low == "a" || low == "an") && u == time.Second {
		// "for a second time" is not a delay.
		return 0, 0, false
	}
	if half1 != "" || half2 != "" {
		n += 0.5
	}
	d := hintDur(n, u)
	end := m[1]
	for {
		mm := hintMoreRE.FindStringSubmatchIndex(text[end:])
		if mm == nil || !unitEnds(text, end+mm[5]) {
			break
		}
		k, ok := hintNumber(text[end+mm[2] : end+mm[3]])
		if !ok {
			break
		}
		d += hintDur(k, hintUnitOf(text[end+mm[4]:end+mm[5]]))
		end += mm[1]
	}
	return d, end, true
}
