package config

import (
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"", 0, false},
		{"0", 0, false},
		{"1s", time.Second, false},
		{"90m", 90 * time.Minute, false},
		{"5d", 5 * 24 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"12h1d", 36 * time.Hour, false},
		{"1.5d", 36 * time.Hour, false},
		{"2h30m10s", 2*time.Hour + 30*time.Minute + 10*time.Second, false},
		{"250ms", 250 * time.Millisecond, false},
		{"1x", 0, true},
		{"d", 0, true},
		{"5", 0, true},
		{"-1s", 0, true},
		{"-1d", 0, true},
		{"1dd", 0, true},
		{"1 d", 0, true},
		{"99999999999999d", 0, true},
		{"1d 2h", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseDuration(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseDuration(%q) err = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err == nil && got.D() != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, want %v", tt.in, got.D(), tt.want)
			}
		})
	}
}

func TestDurationString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{time.Second, "1s"},
		{time.Minute, "1m"},
		{4 * time.Hour, "4h"},
		{90 * time.Minute, "1h30m"},
		{5 * 24 * time.Hour, "5d"},
		{36 * time.Hour, "36h"},
		{1500 * time.Millisecond, "1.5s"},
	}
	for _, tt := range tests {
		got := Duration(tt.in).String()
		if got != tt.want {
			t.Errorf("Duration(%v).String() = %q, want %q", tt.in, got, tt.want)
		}
		back, err := ParseDuration(got)
		if err != nil || back.D() != tt.in {
			t.Errorf("round trip of %q = %v, %v", got, back.D(), err)
		}
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"1024", 1024, false},
		{"0", 0, false},
		{"512KB", 512 << 10, false},
		{"25MB", 25 << 20, false},
		{"1GB", 1 << 30, false},
		{"25mb", 25 << 20, false},
		{"100B", 100, false},
		{"8589934591GB", 8589934591 << 30, false},
		{"8589934592GB", 0, true},
		{"", 0, true},
		{"MB", 0, true},
		{"-1", 0, true},
		{"-0", 0, true},
		{"+5", 0, true},
		{"1.5MB", 0, true},
		{"25TB", 0, true},
		{"25 MiB", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSize(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseSize(%q) err = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err == nil && int64(got) != tt.want {
				t.Fatalf("ParseSize(%q) = %d, want %d", tt.in, got, tt.want)
			}
			if err == nil {
				back, err := ParseSize(got.String())
				if err != nil || back != got {
					t.Fatalf("round trip %q -> %q -> %d, %v", tt.in, got.String(), back, err)
				}
			}
		})
	}
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in        string
		limit     rate.Limit
		burst     int
		str       string
		wantErr   bool
		unlimited bool
	}{
		{"", 0, 0, "", false, true},
		{"1/s", 1, 1, "1/s", false, false},
		{"100/s", 100, 100, "100/s", false, false},
		{"60/m", 1, 1, "1/s", false, false},
		{"10/m", rate.Limit(10.0 / 60), 1, "10/m", false, false},
		{"3600/h", 1, 1, "1/s", false, false},
		{"7/h", rate.Limit(7.0 / 3600), 1, "7/h", false, false},
		{"0.5/s", 0.5, 1, "30/m", false, false},
		{"2.5/s", 2.5, 3, "150/m", false, false},
		{"0/s", 0, 0, "", true, false},
		{"-1/s", 0, 0, "", true, false},
		{"1/d", 0, 0, "", true, false},
		{"1", 0, 0, "", true, false},
		{"/s", 0, 0, "", true, false},
		{"x/s", 0, 0, "", true, false},
		{"NaN/s", 0, 0, "", true, false},
		{"Inf/s", 0, 0, "", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseRate(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseRate(%q) err = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := float64(got.Limit - tt.limit); diff > 1e-12 || diff < -1e-12 || got.Burst != tt.burst {
				t.Fatalf("ParseRate(%q) = %+v, want limit %v burst %d", tt.in, got, tt.limit, tt.burst)
			}
			if got.Unlimited() != tt.unlimited {
				t.Fatalf("Unlimited() = %v", got.Unlimited())
			}
			if got.String() != tt.str {
				t.Fatalf("String() = %q, want %q", got.String(), tt.str)
			}
		})
	}
}

func TestParsePercent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Percent
		wantErr bool
	}{
		{"3%", 0.03, false},
		{" 12.5 % ", 0.125, false},
		{"100%", 1, false},
		{"0%", 0, false},
		{"3", 0, true}, // the sign is required: 3 % or 300 %?
		{"-1%", 0, true},
		{"+5%", 0, true},
		{"%", 0, true},
		{"NaN%", 0, true},
		{"abc%", 0, true},
	}
	for _, tt := range tests {
		got, err := ParsePercent(tt.in)
		if (err != nil) != tt.wantErr {
			t.Fatalf("ParsePercent(%q) err = %v, wantErr %v", tt.in, err, tt.wantErr)
		}
		if err == nil && got != tt.want {
			t.Errorf("ParsePercent(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if s := Percent(0.03).String(); s != "3%" {
		t.Errorf("String() = %q, want 3%%", s)
	}
}
