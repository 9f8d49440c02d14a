package config

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

const day = 24 * time.Hour

const durationHint = "want e.g. 250ms, 30s, 5m, 1h, 7d or 1d12h"

// ParseDuration parses a Go duration ("1h30m") optionally preceded by a whole
// number of days ("7d", "1d12h"). time.ParseDuration has no day unit, and
// retention periods read far better in days than in hundreds of hours.
func ParseDuration(s string) (Duration, error) {
	bad := func() (Duration, error) {
		return 0, fmt.Errorf("invalid duration %s (%s)", quote(s), durationHint)
	}
	rest, neg := s, false
	if len(rest) > 0 && (rest[0] == '-' || rest[0] == '+') {
		neg = rest[0] == '-'
		rest = rest[1:]
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i == 0 || i == len(rest) || rest[i] != 'd' {
		d, err := time.ParseDuration(s)
		if err != nil {
			return bad()
		}
		return Duration(d), nil
	}
	days, err := strconv.ParseInt(rest[:i], 10, 64)
	if err != nil || days > int64(math.MaxInt64/day) {
		return bad()
	}
	total := time.Duration(days) * day
	if tail := rest[i+1:]; tail != "" {
		// A sign in the tail ("1d-2h") would make the value ambiguous.
		if tail[0] == '-' || tail[0] == '+' {
			return bad()
		}
		t, err := time.ParseDuration(tail)
		if err != nil || t > math.MaxInt64-total {
			return bad()
		}
		total += t
	}
	if neg {
		total = -total
	}
	return Duration(total), nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d so that ParseDuration reads it back: whole days as "7d",
// the rest as time.Duration does ("1d12h0m0s", "250ms").
func (d Duration) String() string {
	td := time.Duration(d)
	if td == math.MinInt64 {
		return td.String() // cannot be negated
	}
	sign := ""
	if td < 0 {
		sign, td = "-", -td
	}
	days, rest := td/day, td%day
	switch {
	case days == 0:
		return sign + rest.String()
	case rest == 0:
		return fmt.Sprintf("%s%dd", sign, days)
	default:
		return fmt.Sprintf("%s%dd%s", sign, days, rest)
	}
}

// UnmarshalYAML lets goccy/go-yaml decode "7d" and friends. An empty
// string is zero, which config treats as "use the default", as it does for
// an empty string setting.
func (d *Duration) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	if s == "" {
		*d = 0
		return nil
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText writes the same form String does, so JSON and YAML dumps of a
// Config read back.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText accepts what ParseDuration accepts.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// yamlWant describes the expected YAML in type errors.
func (Duration) yamlWant() string { return "a duration such as 30s, 5m or 7d" }

var byteUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1000,
	"mb":  1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"tb":  1000 * 1000 * 1000 * 1000,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

// byteUnitNames are the units String may use.
var byteUnitNames = []struct {
	name string
	size int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
}

const sizeHint = "want e.g. 65536, 64KiB, 1MiB or 10MB"

// ParseByteSize parses a byte count: a whole number ("65536") or a number
// with a unit, decimal (B, KB, MB, GB, TB: powers of 1000) or binary (KiB,
// MiB, GiB, TiB: powers of 1024). Units are case-insensitive and may be
// separated by a space; a fraction is allowed when the result is a whole
// number of bytes ("1.5KiB").
func ParseByteSize(s string) (ByteSize, error) {
	bad := func(why string) (ByteSize, error) {
		return 0, fmt.Errorf("invalid size %s (%s)", quote(s), why)
	}
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	mult, ok := byteUnits[unit]
	if num == "" || !ok || num[0] == '.' || num[len(num)-1] == '.' || strings.Count(num, ".") > 1 {
		return bad(sizeHint)
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return bad(sizeHint)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return bad("not a whole number of bytes")
	}
	if !r.Num().IsInt64() {
		return bad("too large")
	}
	return ByteSize(r.Num().Int64()), nil
}

// Int64 returns b as a plain byte count.
func (b ByteSize) Int64() int64 { return int64(b) }

// String writes b exactly, with the unit that gives the smallest number, so
// that ParseByteSize reads it back unchanged: 65536 is "64KiB", 10000000 is
// "10MB", 1500 is "1500B".
func (b ByteSize) String() string {
	n, unit := int64(b), "B"
	if b > 0 {
		for _, u := range byteUnitNames {
			if int64(b)%u.size == 0 && int64(b)/u.size < n {
				n, unit = int64(b)/u.size, u.name
			}
		}
	}
	return fmt.Sprintf("%d%s", n, unit)
}

// UnmarshalYAML lets goccy/go-yaml decode "64KiB" as well as plain
// integers. An empty string is zero, as for Duration.
func (b *ByteSize) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	if s == "" {
		*b = 0
		return nil
	}
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalText writes the same form String does.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText accepts what ParseByteSize accepts.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

func (ByteSize) yamlWant() string { return "a size such as 65536, 64KiB or 1MiB" }

// quote quotes s for a message, shortened so that a stray multi-line value
// cannot flood the log.
func quote(s string) string {
	const limit = 40
	if r := []rune(s); len(r) > limit {
		s = string(r[:limit]) + "…"
	}
	return strconv.Quote(s)
}
