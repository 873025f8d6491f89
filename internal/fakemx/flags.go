package fakemx

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The parsers below read the command-line forms of the options, so that
// cmd/fakemx and test harnesses share one syntax.

// ParseWindow reads "START-END", e.g. "10s-25s", relative to server start.
func ParseWindow(s string) (Window, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return Window{}, fmt.Errorf("window %q: want START-END, e.g. 10s-25s", s)
	}
	start, err := time.ParseDuration(a)
	if err != nil {
		return Window{}, fmt.Errorf("window %q: %w", s, err)
	}
	end, err := time.ParseDuration(b)
	if err != nil {
		return Window{}, fmt.Errorf("window %q: %w", s, err)
	}
	if start < 0 || end <= start {
		return Window{}, fmt.Errorf("window %q: want 0 <= START < END", s)
	}
	return Window{Start: start, End: end}, nil
}

// ParseLimits reads "AT:K:R", e.g. "20s:3:50": from 20s on, at most 3
// concurrent sessions and 50 messages per window (0 = unlimited).
func ParseLimits(s string) (Limits, error) {
	f := strings.Split(s, ":")
	if len(f) != 3 {
		return Limits{}, fmt.Errorf("schedule %q: want AT:SESSIONS:RATE, e.g. 20s:3:50", s)
	}
	at, err := time.ParseDuration(f[0])
	if err != nil || at < 0 {
		return Limits{}, fmt.Errorf("schedule %q: bad time %q", s, f[0])
	}
	k, err := strconv.Atoi(f[1])
	if err != nil || k < 0 {
		return Limits{}, fmt.Errorf("schedule %q: bad session count %q", s, f[1])
	}
	r, err := strconv.Atoi(f[2])
	if err != nil || r < 0 {
		return Limits{}, fmt.Errorf("schedule %q: bad rate %q", s, f[2])
	}
	return Limits{At: at, MaxSessions: k, RatePerWindow: r}, nil
}

// ParseRule reads "STAGE:MATCH:REPLY", or "STAGE*N:MATCH:REPLY" to fire
// only on the first N matches, e.g.
// "rcpt:foo:550 5.1.1 no such user" or "data-end*1::451 4.3.0 try again".
// MATCH cannot contain ':'; REPLY may. A literal "\n" in REPLY separates
// the lines of a multi-line reply.
func ParseRule(s string) (Rule, error) {
	f := strings.SplitN(s, ":", 3)
	if len(f) != 3 {
		return Rule{}, fmt.Errorf("script %q: want STAGE:MATCH:REPLY", s)
	}
	r := Rule{Stage: f[0], Match: f[1], Reply: strings.ReplaceAll(f[2], `\n`, "\n")}
	if st, n, ok := strings.Cut(f[0], "*"); ok {
		times, err := strconv.Atoi(n)
		if err != nil || times <= 0 {
			return Rule{}, fmt.Errorf("script %q: bad count %q", s, n)
		}
		r.Stage, r.Times = st, times
	}
	if _, err := compileRule(r); err != nil {
		return Rule{}, fmt.Errorf("script %q: %w", s, err)
	}
	return r, nil
}

// ParsePenalty reads "N:WITHIN:BLOCK[:EXTEND]", e.g. "5:10s:60s:30s":
// after 5 limit refusals within 10 s every session is refused for 60 s,
// and each attempt during the block keeps it shut 30 s longer.
func ParsePenalty(s string) (PenaltyBox, error) {
	f := strings.Split(s, ":")
	if len(f) != 3 && len(f) != 4 {
		return PenaltyBox{}, fmt.Errorf("penalty %q: want N:WITHIN:BLOCK[:EXTEND], e.g. 5:10s:60s:30s", s)
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 1 {
		return PenaltyBox{}, fmt.Errorf("penalty %q: bad refusal count %q", s, f[0])
	}
	var d [3]time.Duration
	for i, v := range f[1:] {
		if d[i], err = time.ParseDuration(v); err != nil || d[i] < 0 || (i < 2 && d[i] == 0) {
			return PenaltyBox{}, fmt.Errorf("penalty %q: bad duration %q", s, v)
		}
	}
	return PenaltyBox{Refusals: n, Within: d[0], Block: d[1], Extend: d[2]}, nil
}

// Set makes a PenaltyBox a flag.Value (ParsePenalty's syntax).
func (p *PenaltyBox) Set(s string) error {
	v, err := ParsePenalty(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

func (p *PenaltyBox) String() string {
	if p == nil || p.Refusals == 0 {
		return ""
	}
	return fmt.Sprintf("%d:%v:%v:%v", p.Refusals, p.Within, p.Block, p.Extend)
}
