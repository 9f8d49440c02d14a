// Package calendar counts time in business hours, so that SLA targets such
// as "first response within 1h" stop the clock outside the support team's
// hours: a mail at Friday 17:50 with a 1h target is due Monday 09:50.
//
// Hours mean what they mean to router/rules (rule clause business_hours):
// an instant is open when its wall clock in the zone falls on a listed day
// and at or after Start but before End. Both are read from the wall clock,
// so a day that loses or gains an hour to DST is that much shorter or
// longer in business time too.
package calendar

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/inroute/inroute/config"
)

const (
	day  = 24 * time.Hour
	week = 7 * day
	// epochMonday is 1970-01-05, the first Monday after the Unix epoch:
	// counting weeks from a Monday lets a week index Monday..Sunday.
	epochMonday  = 4 * 86400
	secondsWeek  = 7 * 86400
	maxDuration  = time.Duration(math.MaxInt64)
	defaultStart = "09:00"
	defaultEnd   = "18:00"
)

// dayNames are indexed Monday first, as Calendar.days is.
var dayNames = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

// Calendar is a weekly pattern of open hours in one time zone. Build it with
// New or Always; it is safe for concurrent use.
type Calendar struct {
	loc *time.Location
	// days is indexed Monday first.
	days       [7]bool
	start, end time.Duration // since local midnight; start < end
	perWeek    time.Duration // open time in one week, > 0
	always     bool
}

// New builds the calendar for bh. Empty fields take the config defaults
// (UTC, mon-fri, 09:00-18:00) so a BusinessHours that skipped
// config.Defaults means the same thing.
//
// End must be after Start. router/rules compares start <= t < end without
// wrapping, so 22:00-06:00 or 00:00-00:00 are never open there; New rejects
// them rather than build a calendar on which no deadline ever falls due.
// There is no way to spell a full 24h day in config ("24:00" is not a time
// of day); use Always for a 24/7 desk.
func New(bh config.BusinessHours) (*Calendar, error) {
	zone := cmp.Or(bh.Timezone, "UTC")
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("calendar: unknown time zone %q (want an IANA name such as Asia/Shanghai)", zone)
	}
	c := &Calendar{loc: loc}
	days := bh.Days
	if len(days) == 0 {
		days = dayNames[:5]
	}
	for _, d := range days {
		i := slices.Index(dayNames, strings.ToLower(d))
		if i < 0 {
			return nil, fmt.Errorf("calendar: unknown day %q (want one of %s)", d, strings.Join(dayNames, ", "))
		}
		c.days[i] = true
	}
	if c.start, err = timeOfDay("start", cmp.Or(bh.Start, defaultStart)); err != nil {
		return nil, err
	}
	if c.end, err = timeOfDay("end", cmp.Or(bh.End, defaultEnd)); err != nil {
		return nil, err
	}
	if c.end <= c.start {
		return nil, fmt.Errorf("calendar: end %s is not after start %s: hours past midnight are not supported (routing rules would never be open)",
			cmp.Or(bh.End, defaultEnd), cmp.Or(bh.Start, defaultStart))
	}
	for _, open := range c.days {
		if open {
			c.perWeek += c.end - c.start
		}
	}
	return c, nil
}

// timeOfDay parses like config validation does, so New accepts exactly what
// a validated config holds.
func timeOfDay(field, s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("calendar: %s: want a time of day as HH:MM, got %q", field, s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// Always returns a calendar that is open 24/7, for targets counted in plain
// elapsed time (routing.sla.business_hours: false).
func Always() *Calendar {
	return &Calendar{
		loc:     time.UTC,
		days:    [7]bool{true, true, true, true, true, true, true},
		start:   0,
		end:     day,
		perWeek: week,
		always:  true,
	}
}

// Location is the calendar's time zone.
func (c *Calendar) Location() *time.Location { return c.loc }

// Open reports whether t is within business hours.
func (c *Calendar) Open(t time.Time) bool {
	if c.always {
		return true
	}
	_, off := t.In(c.loc).Zone()
	p := wallPos(t, off)
	d := p.within / day
	tod := p.within - d*day
	return c.days[d] && tod >= c.start && tod < c.end
}

// Add returns the instant at which d of business time has passed since
// from. Counting starts at from, or at the next opening if from is outside
// business hours. The result is the earliest such instant, so a target that
// uses up exactly the rest of a day falls due at closing time, not at the
// next opening.
//
// A d <= 0 returns from unchanged, even outside business hours: a target of
// zero is due at once.
func (c *Calendar) Add(from time.Time, d time.Duration) time.Time {
	if d <= 0 {
		return from
	}
	if c.always {
		return from.Add(d)
	}
	u := from.In(c.loc)
	for {
		_, off := u.Zone()
		p := wallPos(u, off)
		// Within one zone period the wall clock runs in step with real
		// time, so business time there is a pure function of wall
		// positions; DST only changes things at the period's end.
		end := periodEnd(u, off)
		if end.IsZero() || c.covers(p, wallPos(end, off), d) {
			return c.solve(p, d).instant(off).In(from.Location())
		}
		d -= c.measure(p, wallPos(end, off))
		u = end.In(c.loc)
	}
}

// Between returns the business time from a to b, 0 if b is not after a.
// It saturates at the largest time.Duration.
func (c *Calendar) Between(a, b time.Time) time.Duration {
	if !b.After(a) {
		return 0
	}
	if c.always {
		return b.Sub(a)
	}
	var total time.Duration
	u := a.In(c.loc)
	for u.Before(b) {
		_, off := u.Zone()
		end := periodEnd(u, off)
		if end.IsZero() || end.After(b) {
			end = b
		}
		m := c.measure(wallPos(u, off), wallPos(end, off))
		if m > maxDuration-total {
			return maxDuration
		}
		total += m
		u = end.In(c.loc)
	}
	return total
}

// periodEnd is the first instant after u whose UTC offset is not off (u's
// own), or zero if the offset never changes again. Extra boundaries where
// the offset stays the same are harmless; a missing one is not.
func periodEnd(u time.Time, off int) time.Time {
	_, end := u.ZoneBounds()
	if end.IsZero() {
		return end
	}
	if !end.After(u) {
		// golang/go#81583: in a leap year served by the zone's TZ footer
		// rule, ZoneBounds ends the period at Dec 31 00:00 UTC even for
		// instants after that, which would stall Add and Between. Fall
		// back to the next UTC midnight, checked below like any end.
		end = u.UTC().Truncate(day).Add(day)
	}
	if offsetAt(end.Add(-time.Nanosecond), u.Location()) == off {
		return end
	}
	// The offset changed before end, so end is wrong; find the change.
	// Bisection assumes a single change before end, true of the one-day
	// fallback above; it only guards ZoneBounds otherwise.
	lo, hi := u, end.Add(-time.Nanosecond)
	for hi.Sub(lo) > time.Nanosecond {
		mid := lo.Add(hi.Sub(lo) / 2)
		if offsetAt(mid, u.Location()) == off {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

func offsetAt(t time.Time, loc *time.Location) int {
	_, off := t.In(loc).Zone()
	return off
}

// pos is a wall-clock position: whole weeks since epochMonday plus the time
// into that week. Keeping weeks apart lets instants centuries apart be
// compared without overflowing time.Duration.
type pos struct {
	week   int64
	within time.Duration // [0, week)
}

// wallPos is t's wall clock under UTC offset off (seconds east).
func wallPos(t time.Time, off int) pos {
	s := t.Unix() + int64(off) - epochMonday
	w := s / secondsWeek
	if s%secondsWeek < 0 {
		w--
	}
	return pos{week: w, within: time.Duration(s-w*secondsWeek)*time.Second + time.Duration(t.Nanosecond())}
}

// instant is the time whose wall clock under offset off is p.
func (p pos) instant(off int) time.Time {
	s := p.within / time.Second
	ns := p.within - s*time.Second
	return time.Unix(epochMonday+p.week*secondsWeek+int64(s)-int64(off), int64(ns))
}

// cum is the open time from the start of the week up to x in [0, week].
func (c *Calendar) cum(x time.Duration) time.Duration {
	var n time.Duration
	for i, open := range c.days {
		if !open {
			continue
		}
		o := time.Duration(i)*day + c.start
		n += min(max(x-o, 0), c.end-c.start)
	}
	return n
}

// inv is the earliest x in the week with cum(x) == r, for 0 < r <= perWeek.
func (c *Calendar) inv(r time.Duration) time.Duration {
	for i, open := range c.days {
		if !open {
			continue
		}
		if n := c.end - c.start; r > n {
			r -= n
			continue
		}
		return time.Duration(i)*day + c.start + r
	}
	panic("calendar: inv beyond the week") // unreachable while r <= perWeek
}

// measure is the open time between wall positions a <= b, saturating.
//
// Saturation is exact, not approximate: Add subtracts measure from a d it
// has just found larger, which must stay positive.
func (c *Calendar) measure(a, b pos) time.Duration {
	weeks := b.week - a.week
	delta := c.cum(b.within) - c.cum(a.within) // in (-perWeek, perWeek)
	if weeks == 0 {
		return delta
	}
	// (weeks-1)*perWeek + (perWeek+delta) keeps every term non-negative.
	hi, lo := bits.Mul64(uint64(weeks-1), uint64(c.perWeek))
	rest := c.perWeek + delta
	if hi != 0 || lo > uint64(maxDuration-rest) {
		return maxDuration
	}
	return time.Duration(lo) + rest
}

// covers reports whether measure(a, b) >= d, exactly even where measure
// would saturate: a zone period may outlast the Duration range.
func (c *Calendar) covers(a, b pos, d time.Duration) bool {
	weeks := b.week - a.week - int64(d/c.perWeek)
	switch {
	case weeks >= 2:
		return true
	case weeks < 0:
		return false
	}
	return time.Duration(weeks)*c.perWeek+c.cum(b.within)-c.cum(a.within) >= d%c.perWeek
}

// solve is the earliest wall position q after p with measure(p, q) == d,
// for d > 0. Whole weeks are split off first so that neither the count
// nor the arithmetic grows with d.
func (c *Calendar) solve(p pos, d time.Duration) pos {
	weeks := int64(d / c.perWeek)
	v := c.cum(p.within) + d%c.perWeek // in (0, 2*perWeek) unless d%perWeek == 0
	k := weeks + int64(v/c.perWeek)
	r := v % c.perWeek
	if r == 0 {
		// v > 0 as d > 0 so k >= 1: end on the week's last closing,
		// not the next week's first opening.
		k--
		r = c.perWeek
	}
	return pos{week: p.week + k, within: c.inv(r)}
}
