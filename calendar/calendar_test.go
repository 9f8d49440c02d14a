package calendar

import (
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/inroute/inroute/config"
)

func mustNew(t testing.TB, bh config.BusinessHours) *Calendar {
	t.Helper()
	c, err := New(bh)
	if err != nil {
		t.Fatalf("New(%+v): %v", bh, err)
	}
	return c
}

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loc
}

// at parses a wall time in loc; "MST" in the layout resolves the DST
// ambiguity of a repeated hour when the test must name one side.
func at(t testing.TB, loc *time.Location, s string) time.Time {
	t.Helper()
	layout := "2006-01-02 15:04"
	if strings.Count(s, ":") == 2 {
		layout = "2006-01-02 15:04:05"
	}
	if strings.Count(s, " ") == 2 {
		layout += " MST"
	}
	v, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return v
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		bh   config.BusinessHours
		err  string
	}{
		{"defaults", config.BusinessHours{}, ""},
		{"upper-case day", config.BusinessHours{Days: []string{"MON", "Sat"}}, ""},
		{"unknown zone", config.BusinessHours{Timezone: "Mars/Olympus"}, `unknown time zone "Mars/Olympus"`},
		{"bad start", config.BusinessHours{Start: "25:00"}, `start: want a time of day as HH:MM, got "25:00"`},
		{"bad end", config.BusinessHours{End: "6pm"}, `end: want a time of day as HH:MM, got "6pm"`},
		{"24:00 is not a time of day", config.BusinessHours{Start: "00:00", End: "24:00"}, `end: want a time of day`},
		{"bad day", config.BusinessHours{Days: []string{"mon", "funday"}}, `unknown day "funday"`},
		{"overnight", config.BusinessHours{Start: "22:00", End: "06:00"}, "end 06:00 is not after start 22:00"},
		{"empty day", config.BusinessHours{Start: "09:00", End: "09:00"}, "is not after start"},
		{"midnight to midnight", config.BusinessHours{Start: "00:00", End: "00:00"}, "is not after start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.bh)
			if tc.err == "" {
				if err != nil || c == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("New error = %v, want it to contain %q", err, tc.err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := mustNew(t, config.BusinessHours{})
	for s, want := range map[string]bool{
		"2025-03-03 09:00": true,  // Monday
		"2025-03-07 17:59": true,  // Friday
		"2025-03-07 18:00": false, // Friday closing
		"2025-03-08 12:00": false, // Saturday
		"2025-03-09 12:00": false, // Sunday
		"2025-03-03 08:59": false,
	} {
		if got := c.Open(at(t, time.UTC, s)); got != want {
			t.Errorf("Open(%s) = %v, want %v", s, got, want)
		}
	}
}

func TestAdd(t *testing.T) {
	office := config.BusinessHours{Timezone: "UTC", Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: "09:00", End: "18:00"}
	ny := mustLoad(t, "America/New_York")
	berlin := mustLoad(t, "Europe/Berlin")
	shanghai := mustLoad(t, "Asia/Shanghai")
	for _, tc := range []struct {
		name        string
		bh          config.BusinessHours
		loc         *time.Location
		from        string
		d           time.Duration
		want        string
		skipBetween bool // skip the Between check (d <= 0)
	}{
		{name: "friday evening rolls to monday", bh: office, loc: time.UTC, from: "2025-03-07 17:50", d: time.Hour, want: "2025-03-10 09:50"},
		{name: "saturday starts at monday opening", bh: office, loc: time.UTC, from: "2025-03-08 10:00", d: time.Hour, want: "2025-03-10 10:00"},
		{name: "sunday night", bh: office, loc: time.UTC, from: "2025-03-09 23:59", d: 30 * time.Minute, want: "2025-03-10 09:30"},
		{name: "before opening", bh: office, loc: time.UTC, from: "2025-03-04 07:00", d: 2 * time.Hour, want: "2025-03-04 11:00"},
		{name: "at opening", bh: office, loc: time.UTC, from: "2025-03-04 09:00", d: time.Hour, want: "2025-03-04 10:00"},
		{name: "due at closing, not next opening", bh: office, loc: time.UTC, from: "2025-03-04 17:00", d: time.Hour, want: "2025-03-04 18:00"},
		{name: "at closing", bh: office, loc: time.UTC, from: "2025-03-04 18:00", d: time.Minute, want: "2025-03-05 09:01"},
		{name: "one minute before closing", bh: office, loc: time.UTC, from: "2025-03-04 17:59", d: 2 * time.Minute, want: "2025-03-05 09:01"},
		{name: "whole week ends friday closing", bh: office, loc: time.UTC, from: "2025-03-03 09:00", d: 45 * time.Hour, want: "2025-03-07 18:00"},
		{name: "ten weeks", bh: office, loc: time.UTC, from: "2025-03-04 10:00", d: 10 * 45 * time.Hour, want: "2025-05-13 10:00"},
		{name: "ten weeks from saturday", bh: office, loc: time.UTC, from: "2025-03-08 10:00", d: 10 * 45 * time.Hour, want: "2025-05-16 18:00"},
		{name: "zero is due at once", bh: office, loc: time.UTC, from: "2025-03-08 10:00", d: 0, want: "2025-03-08 10:00", skipBetween: true},
		{name: "negative is due at once", bh: office, loc: time.UTC, from: "2025-03-04 10:00", d: -time.Hour, want: "2025-03-04 10:00", skipBetween: true},

		{name: "shanghai friday", bh: config.BusinessHours{Timezone: "Asia/Shanghai"}, loc: shanghai, from: "2025-03-07 17:30", d: 2 * time.Hour, want: "2025-03-10 10:30"},
		{name: "shanghai from a UTC instant", bh: config.BusinessHours{Timezone: "Asia/Shanghai"}, loc: time.UTC, from: "2025-03-07 09:30", d: 2 * time.Hour, want: "2025-03-10 02:30"},

		// 2025-03-09: New York skips 02:00-03:00 (EST to EDT).
		{name: "new york spring forward", bh: config.BusinessHours{Timezone: "America/New_York", Days: []string{"sat", "sun"}, Start: "01:00", End: "05:00"},
			loc: ny, from: "2025-03-08 04:00", d: 2 * time.Hour, want: "2025-03-09 03:00"},
		{name: "new york start in the skipped hour", bh: config.BusinessHours{Timezone: "America/New_York", Days: []string{"sun"}, Start: "02:30", End: "04:00"},
			loc: ny, from: "2025-03-09 00:00", d: 30 * time.Minute, want: "2025-03-09 03:30"},
		{name: "new york office week across spring forward", bh: config.BusinessHours{Timezone: "America/New_York"},
			loc: ny, from: "2025-03-07 17:00", d: time.Hour + 45*time.Hour, want: "2025-03-14 18:00"},
		// 2025-11-02: New York repeats 01:00-02:00 (EDT then EST).
		{name: "new york fall back", bh: config.BusinessHours{Timezone: "America/New_York", Days: []string{"sun"}, Start: "00:00", End: "03:00"},
			loc: ny, from: "2025-11-02 00:00", d: 3 * time.Hour, want: "2025-11-02 02:00 EST"},
		{name: "new york start in the repeated hour", bh: config.BusinessHours{Timezone: "America/New_York", Days: []string{"sun"}, Start: "01:30", End: "03:00"},
			loc: ny, from: "2025-11-02 00:00", d: 45 * time.Minute, want: "2025-11-02 01:45 EST"},
		// 2025-03-30: Berlin skips 02:00-03:00; 2025-10-26: it repeats 02:00-03:00.
		{name: "berlin spring forward", bh: config.BusinessHours{Timezone: "Europe/Berlin", Days: []string{"sun"}, Start: "01:00", End: "04:00"},
			loc: berlin, from: "2025-03-30 00:00", d: 2 * time.Hour, want: "2025-03-30 04:00"},
		{name: "berlin fall back", bh: config.BusinessHours{Timezone: "Europe/Berlin", Days: []string{"sun"}, Start: "01:00", End: "04:00"},
			loc: berlin, from: "2025-10-26 00:00", d: 4 * time.Hour, want: "2025-10-26 04:00"},
		{name: "berlin fall back lands in the repeated hour", bh: config.BusinessHours{Timezone: "Europe/Berlin", Days: []string{"sun"}, Start: "01:00", End: "04:00"},
			loc: berlin, from: "2025-10-26 00:00", d: 2*time.Hour + 30*time.Minute, want: "2025-10-26 02:30 CET"},

		{name: "near-24h days", bh: config.BusinessHours{Days: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, Start: "00:00", End: "23:59"},
			loc: time.UTC, from: "2025-03-08 23:00", d: 2 * time.Hour, want: "2025-03-09 01:01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustNew(t, tc.bh)
			from := at(t, tc.loc, tc.from)
			want := at(t, tc.loc, tc.want)
			got := c.Add(from, tc.d)
			if !got.Equal(want) {
				t.Fatalf("Add(%s, %v) = %s, want %s", from, tc.d, got.In(tc.loc), want)
			}
			if got.Location() != from.Location() {
				t.Errorf("Add returned location %v, want from's %v", got.Location(), from.Location())
			}
			if tc.skipBetween {
				return
			}
			if b := c.Between(from, got); b != tc.d {
				t.Errorf("Between(from, Add(from, %v)) = %v", tc.d, b)
			}
			if !c.Open(got.Add(-time.Nanosecond)) {
				t.Errorf("the nanosecond before the deadline %s is not open", got)
			}
		})
	}
}

func TestOpenDST(t *testing.T) {
	ny := mustLoad(t, "America/New_York")
	c := mustNew(t, config.BusinessHours{Timezone: "America/New_York", Days: []string{"sun"}, Start: "01:30", End: "03:00"})
	for s, want := range map[string]bool{
		"2025-11-02 01:15 EDT": false,
		"2025-11-02 01:45 EDT": true,
		"2025-11-02 01:15 EST": false, // the repeated hour's first half is before start again
		"2025-11-02 01:45 EST": true,
		"2025-11-02 02:59 EST": true,
		"2025-11-02 03:00 EST": false,
	} {
		if got := c.Open(at(t, ny, s)); got != want {
			t.Errorf("Open(%s) = %v, want %v", s, got, want)
		}
	}
}

func TestBetween(t *testing.T) {
	office := mustNew(t, config.BusinessHours{})
	ny := mustLoad(t, "America/New_York")
	nyCal := mustNew(t, config.BusinessHours{Timezone: "America/New_York", Days: []string{"sun"}, Start: "00:00", End: "03:00"})
	berlin := mustLoad(t, "Europe/Berlin")
	berlinCal := mustNew(t, config.BusinessHours{Timezone: "Europe/Berlin", Days: []string{"sun"}, Start: "01:00", End: "04:00"})
	allWeek := mustNew(t, config.BusinessHours{Days: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, Start: "00:00", End: "23:59"})
	for _, tc := range []struct {
		name string
		c    *Calendar
		a, b time.Time
		want time.Duration
	}{
		{"reversed", office, at(t, time.UTC, "2025-03-05 12:00"), at(t, time.UTC, "2025-03-04 12:00"), 0},
		{"equal", office, at(t, time.UTC, "2025-03-05 12:00"), at(t, time.UTC, "2025-03-05 12:00"), 0},
		{"weekend only", office, at(t, time.UTC, "2025-03-07 18:00"), at(t, time.UTC, "2025-03-10 09:00"), 0},
		{"friday to monday", office, at(t, time.UTC, "2025-03-07 17:50"), at(t, time.UTC, "2025-03-10 09:50"), time.Hour},
		{"a year", office, at(t, time.UTC, "2024-12-30 00:00"), at(t, time.UTC, "2025-12-29 00:00"), 52 * 45 * time.Hour},
		{"new york short sunday", nyCal, at(t, ny, "2025-03-09 00:00"), at(t, ny, "2025-03-10 00:00"), 2 * time.Hour},
		{"new york long sunday", nyCal, at(t, ny, "2025-11-02 00:00"), at(t, ny, "2025-11-03 00:00"), 4 * time.Hour},
		{"berlin short sunday", berlinCal, at(t, berlin, "2025-03-30 00:00"), at(t, berlin, "2025-03-31 00:00"), 2 * time.Hour},
		{"berlin long sunday", berlinCal, at(t, berlin, "2025-10-26 00:00"), at(t, berlin, "2025-10-27 00:00"), 4 * time.Hour},
		{"near-24h week", allWeek, at(t, time.UTC, "2025-03-03 00:00"), at(t, time.UTC, "2025-03-10 00:00"), 7 * (24*time.Hour - time.Minute)},
		{"sub-second", office, at(t, time.UTC, "2025-03-04 10:00:00").Add(250 * time.Millisecond), at(t, time.UTC, "2025-03-04 10:00:01"), 750 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.Between(tc.a, tc.b); got != tc.want {
				t.Fatalf("Between(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

func TestAlways(t *testing.T) {
	c := Always()
	from := at(t, time.UTC, "2025-03-08 03:17")
	for _, d := range []time.Duration{time.Nanosecond, time.Hour, 1000 * 24 * time.Hour} {
		if got := c.Add(from, d); !got.Equal(from.Add(d)) {
			t.Errorf("Add(%v) = %s, want %s", d, got, from.Add(d))
		}
		if got := c.Between(from, from.Add(d)); got != d {
			t.Errorf("Between = %v, want %v", got, d)
		}
	}
	if !c.Open(from) {
		t.Error("Always is closed")
	}
	if got := c.Add(from, 0); !got.Equal(from) {
		t.Errorf("Add(0) = %s", got)
	}
}

// TestHugeDurations checks that many weeks cost no more than one and that
// nothing overflows near the Duration limit.
func TestHugeDurations(t *testing.T) {
	c := mustNew(t, config.BusinessHours{Timezone: "Asia/Shanghai"})
	from := at(t, time.UTC, "2025-03-04 10:00")
	d := time.Duration(1<<63 - 1)
	got := c.Add(from, d)
	if !got.After(from) {
		t.Fatalf("Add(max) = %s, not after from", got)
	}
	if b := c.Between(from, got); b != d {
		t.Errorf("Between(from, Add(from, max)) = %v, want %v", b, d)
	}
	weeks := 5000
	got = c.Add(from, time.Duration(weeks)*45*time.Hour)
	if want := from.AddDate(0, 0, 7*weeks); !got.Equal(want) {
		t.Errorf("Add(%d weeks) = %s, want %s", weeks, got, want)
	}
	// A DST zone has to cross two transitions a year; still cheap.
	ny := mustNew(t, config.BusinessHours{Timezone: "America/New_York"})
	got = ny.Add(from, d)
	if b := ny.Between(from, got); b != d {
		t.Errorf("New York: Between(from, Add(from, max)) = %v, want %v", b, d)
	}
}

// TestLeapYearZoneBounds runs through the last UTC day of leap years that
// zones reach only through their TZ footer rule, where time.ZoneBounds
// reports an end before the instant (golang/go#81583) and a naive loop
// never advances.
func TestLeapYearZoneBounds(t *testing.T) {
	for _, zone := range []string{"America/New_York", "Europe/Berlin", "Australia/Sydney"} {
		c := mustNew(t, config.BusinessHours{Timezone: zone, Days: dayNames, Start: "00:00", End: "23:59"})
		for _, y := range []int{2040, 2044, 2096} {
			from := time.Date(y, 12, 31, 12, 0, 0, 0, time.UTC)
			done := make(chan time.Time, 1)
			go func() { done <- c.Add(from, 48*time.Hour) }()
			select {
			case got := <-done:
				if b := c.Between(from, got); b != 48*time.Hour {
					t.Errorf("%s %d: Between(from, Add(from, 48h)) = %v", zone, y, b)
				}
				if want := bruteBetween(c, from, got); want != 48*time.Hour {
					t.Errorf("%s %d: Add(from, 48h) = %s, brute force counts %v", zone, y, got, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s %d: Add does not return", zone, y)
			}
		}
	}
}

var oracleZones = []string{
	"UTC", "America/New_York", "Europe/Berlin", "Asia/Shanghai", "Asia/Kathmandu",
	"Australia/Lord_Howe", "America/Sao_Paulo", "Pacific/Apia", "Africa/Casablanca",
}

// bruteBetween counts open time minute by minute. Zones keep whole-minute
// offsets and transitions since 1970, so openness is constant on each UTC
// minute and sampling its start is exact.
func bruteBetween(c *Calendar, a, b time.Time) time.Duration {
	var n time.Duration
	for m := a.Truncate(time.Minute); m.Before(b); m = m.Add(time.Minute) {
		lo, hi := m, m.Add(time.Minute)
		if lo.Before(a) {
			lo = a
		}
		if hi.After(b) {
			hi = b
		}
		if c.Open(m) {
			n += hi.Sub(lo)
		}
	}
	return n
}

// TestOracle compares Between and Add with minute-by-minute counting on
// random calendars, including zones with half-hour DST (Lord_Howe), DST at
// midnight (Sao_Paulo), a skipped day (Apia, 2011-12-30) and Ramadan
// suspensions (Casablanca).
func TestOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 300
	if testing.Short() {
		n = 30
	}
	apia := mustLoad(t, "Pacific/Apia")
	for i := range n {
		bh := randomHours(rng.Uint32(), oracleZones[rng.IntN(len(oracleZones))])
		c, err := New(bh)
		if err != nil {
			continue
		}
		base := time.Date(2000+rng.IntN(60), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), 0, 0, 0, 0, time.UTC)
		if i%10 == 0 {
			base = time.Date(2011, 12, 25+rng.IntN(5), 0, 0, 0, 0, apia)
		}
		a := base.Add(time.Duration(rng.Int64N(int64(7 * 24 * time.Hour))))
		b := a.Add(time.Duration(rng.Int64N(int64(21 * 24 * time.Hour))))
		want := bruteBetween(c, a, b)
		if got := c.Between(a, b); got != want {
			t.Fatalf("%+v: Between(%s, %s) = %v, brute force %v", bh, a, b, got, want)
		}
		if want == 0 {
			continue
		}
		d := time.Duration(rng.Int64N(int64(want))) + 1
		got := c.Add(a, d)
		if got.After(b) {
			t.Fatalf("%+v: Add(%s, %v) = %s, after %s which has %v", bh, a, d, got, b, want)
		}
		if bb := bruteBetween(c, a, got); bb != d {
			t.Fatalf("%+v: Add(%s, %v) = %s, brute force counts %v", bh, a, d, got, bb)
		}
	}
}

// randomHours turns bits into a valid-looking BusinessHours; about one in
// eight has End <= Start, which New must reject.
func randomHours(bits uint32, zone string) config.BusinessHours {
	var days []string
	for i, name := range dayNames {
		if bits&(1<<i) != 0 {
			days = append(days, name)
		}
	}
	start := int(bits>>7) % (24 * 60)
	span := int(bits>>18)%(24*60) + 1
	end := start + span
	if bits>>29 == 0 {
		end = start - span
	}
	return config.BusinessHours{
		Timezone: zone,
		Days:     days,
		Start:    hhmm(start),
		End:      hhmm(end),
	}
}

func hhmm(m int) string {
	m = max(0, min(m, 24*60-1))
	return time.Date(2000, 1, 1, m/60, m%60, 0, 0, time.UTC).Format("15:04")
}

// TestMeasureSaturation pins measure to exact arithmetic next to the
// Duration limit, where a zone period lasting centuries can take it.
func TestMeasureSaturation(t *testing.T) {
	c := mustNew(t, config.BusinessHours{})
	limit := big.NewInt(int64(maxDuration))
	top := int64(maxDuration / c.perWeek)
	for _, weeks := range []int64{0, 1, top - 2, top - 1, top, top + 1, 1 << 40} {
		for _, aw := range []time.Duration{0, 10 * time.Hour, 6 * day} {
			for _, bw := range []time.Duration{0, 3*day + 12*time.Hour, week - 1} {
				a, b := pos{week: 5, within: aw}, pos{week: 5 + weeks, within: bw}
				if weeks == 0 && bw < aw {
					continue
				}
				exact := new(big.Int).Mul(big.NewInt(weeks), big.NewInt(int64(c.perWeek)))
				exact.Add(exact, big.NewInt(int64(c.cum(bw)-c.cum(aw))))
				want := maxDuration
				if exact.Cmp(limit) < 0 {
					want = time.Duration(exact.Int64())
				}
				if got := c.measure(a, b); got != want {
					t.Errorf("measure(%v, %v) = %v, want %v", a, b, got, want)
				}
			}
		}
	}
}
