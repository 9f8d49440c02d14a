package calendar

import (
	"testing"
	"time"
)

var fuzzZones = append([]string{"Europe/London", "America/Santiago", "Antarctica/Troll"}, oracleZones...)

// FuzzAdd checks the properties callers rely on: Add then Between gives
// back d, Add is monotone in d, a deadline falls just after open time, and
// for short spans counting agrees with minute-by-minute brute force.
func FuzzAdd(f *testing.F) {
	fri := time.Date(2025, 3, 7, 17, 50, 0, 0, time.UTC)
	f.Add(fri.Unix(), uint32(0), int64(time.Hour), uint8(0), uint32(0))
	f.Add(fri.Unix(), uint32(999_999_999), int64(45*time.Hour), uint8(1), uint32(0x3fff_ffff))
	f.Add(time.Date(2025, 11, 2, 5, 30, 0, 0, time.UTC).Unix(), uint32(0), int64(90*time.Minute), uint8(4), uint32(0xffff_ff40))
	f.Add(time.Date(2040, 12, 31, 12, 0, 0, 0, time.UTC).Unix(), uint32(1), int64(1<<62), uint8(4), uint32(0x7f))
	f.Add(time.Date(2011, 12, 29, 12, 0, 0, 0, time.UTC).Unix(), uint32(0), int64(3*24*time.Hour), uint8(10), uint32(0x5555_5555))
	f.Fuzz(func(t *testing.T, sec int64, nsec uint32, d int64, zone uint8, hours uint32) {
		// Keep to years 1900-2400: older instants meet LMT offsets with
		// seconds in them, which is fine for Calendar but not for the
		// minute-based brute force.
		const lo, span = -2208988800, 15778800000
		sec = lo + (sec%span+span)%span
		from := time.Unix(sec, int64(nsec%1e9))
		c, err := New(randomHours(hours, fuzzZones[int(zone)%len(fuzzZones)]))
		if err != nil {
			return
		}
		got := c.Add(from, time.Duration(d))
		if d <= 0 {
			if !got.Equal(from) {
				t.Fatalf("Add(%s, %v) = %s, want from", from, time.Duration(d), got)
			}
			return
		}
		dd := time.Duration(d)
		if b := c.Between(from, got); b != dd {
			t.Fatalf("Between(%s, Add = %s) = %v, want %v", from, got, b, dd)
		}
		if !got.After(from) {
			t.Fatalf("Add(%s, %v) = %s, not after from", from, dd, got)
		}
		if !c.Open(got.Add(-time.Nanosecond)) {
			t.Fatalf("Add(%s, %v) = %s, but the nanosecond before is closed", from, dd, got)
		}
		for _, smaller := range []time.Duration{dd - 1, dd / 2, dd / 7} {
			if smaller <= 0 {
				continue
			}
			if s := c.Add(from, smaller); !s.Before(got) {
				t.Fatalf("Add(%s, %v) = %s, not before Add(%v) = %s", from, smaller, s, dd, got)
			}
		}
		if sec >= 0 && got.Sub(from) <= 4*24*time.Hour {
			if b := bruteBetween(c, from, got); b != dd {
				t.Fatalf("Add(%s, %v) = %s, brute force counts %v", from, dd, got, b)
			}
		}
	})
}
