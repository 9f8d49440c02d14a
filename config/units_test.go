package config_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/inroute/inroute/config"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		str  string // String() of the result
	}{
		{"0", 0, "0s"},
		{"250ms", 250 * time.Millisecond, "250ms"},
		{"30s", 30 * time.Second, "30s"},
		{"1h30m", 90 * time.Minute, "1h30m0s"},
		{"7d", 7 * 24 * time.Hour, "7d"},
		{"1d12h", 36 * time.Hour, "1d12h0m0s"},
		{"1d1ns", 24*time.Hour + 1, "1d1ns"},
		{"0d", 0, "0s"},
		{"-7d", -7 * 24 * time.Hour, "-7d"},
		{"+2d", 48 * time.Hour, "2d"},
		{"48h", 48 * time.Hour, "2d"},
		{"106751d", 106751 * 24 * time.Hour, "106751d"},
	}
	for _, tt := range tests {
		got, err := config.ParseDuration(tt.in)
		if err != nil || got.D() != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got.D(), err, tt.want)
			continue
		}
		if got.String() != tt.str {
			t.Errorf("ParseDuration(%q).String() = %q, want %q", tt.in, got.String(), tt.str)
		}
		back, err := config.ParseDuration(got.String())
		if err != nil || back != got {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v back", got.String(), back, err, got)
		}
	}
	for _, in := range []string{"", "d", "7", "30", "1.5d", "1h7d", "1d-2h", "1d+2h", "7 d", "7days", "106752d", "106751d24h", "9999999999999999999d", "abc"} {
		if got, err := config.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		} else if !strings.HasPrefix(err.Error(), "invalid duration ") {
			t.Errorf("ParseDuration(%q) error %q", in, err)
		}
	}
	if s := config.Duration(math.MinInt64).String(); s == "" {
		t.Error("String() of the smallest Duration is empty")
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		str  string
	}{
		{"0", 0, "0B"},
		{"65536", 65536, "64KiB"},
		{"100B", 100, "100B"},
		{"1KB", 1000, "1KB"},
		{"10MB", 10_000_000, "10MB"},
		{"2GB", 2_000_000_000, "2GB"},
		{"3TB", 3_000_000_000_000, "3TB"},
		{"64KiB", 64 << 10, "64KiB"},
		{"1MiB", 1 << 20, "1MiB"},
		{"16MiB", 16 << 20, "16MiB"},
		{"1GiB", 1 << 30, "1GiB"},
		{"2TiB", 2 << 40, "2TiB"},
		{"1.5KiB", 1536, "1536B"},
		{"1.5MB", 1_500_000, "1500KB"},
		{"1000KiB", 1000 << 10, "1000KiB"},
		{"64 kib", 64 << 10, "64KiB"},
		{"5 MB", 5_000_000, "5MB"},
		{"9223372036854775807", math.MaxInt64, "9223372036854775807B"},
	}
	for _, tt := range tests {
		got, err := config.ParseByteSize(tt.in)
		if err != nil || got.Int64() != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.in, got.Int64(), err, tt.want)
			continue
		}
		if got.String() != tt.str {
			t.Errorf("ParseByteSize(%q).String() = %q, want %q", tt.in, got.String(), tt.str)
		}
		back, err := config.ParseByteSize(got.String())
		if err != nil || back != got {
			t.Errorf("ParseByteSize(%q) = %v, %v; want %v back", got.String(), back, err, got)
		}
	}
	for _, in := range []string{"", "-1", "KiB", "1.1KiB", "1.", ".5KB", "1..5KB", "1.2.3", "64XB", "64 K", "1e3", "9223372036854775808", "9EiB", "8388608TiB", "0x10"} {
		if got, err := config.ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %v, want an error", in, got)
		} else if !strings.HasPrefix(err.Error(), "invalid size ") {
			t.Errorf("ParseByteSize(%q) error %q", in, err)
		}
	}
}

// The types also work with plain goccy/go-yaml and with encoding.Text*, for
// code that reads them outside config.yaml.
func TestUnitsOutsideConfig(t *testing.T) {
	var v struct {
		D config.Duration `yaml:"d"`
		B config.ByteSize `yaml:"b"`
		C config.ByteSize `yaml:"c"`
	}
	if err := yaml.Unmarshal([]byte("d: 1d2h\nb: 1MiB\nc: 2048\n"), &v); err != nil {
		t.Fatal(err)
	}
	if v.D.D() != 26*time.Hour || v.B != 1<<20 || v.C != 2048 {
		t.Errorf("yaml.Unmarshal = %+v", v)
	}
	if err := yaml.Unmarshal([]byte("d: soon\n"), &v); err == nil {
		t.Error("yaml.Unmarshal accepted d: soon")
	}
	out, err := yaml.Marshal(v)
	if err != nil || string(out) != "d: 1d2h0m0s\nb: 1MiB\nc: 2KiB\n" {
		t.Errorf("yaml.Marshal = %q, %v", out, err)
	}

	var d config.Duration
	if err := d.UnmarshalText([]byte("2d")); err != nil || d.D() != 48*time.Hour {
		t.Errorf("UnmarshalText(2d) = %v, %v", d, err)
	}
	if err := d.UnmarshalText([]byte("2x")); err == nil {
		t.Error("UnmarshalText(2x) succeeded")
	}
	var b config.ByteSize
	if err := b.UnmarshalText([]byte("4KiB")); err != nil || b != 4096 {
		t.Errorf("UnmarshalText(4KiB) = %v, %v", b, err)
	}
	if err := b.UnmarshalText([]byte("4x")); err == nil {
		t.Error("UnmarshalText(4x) succeeded")
	}
}
