package playlists

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	// Zone rules built in: a box's minimal Linux may have no
	// /usr/share/zoneinfo, and without it every schedule would fail
	// Validate and never play.
	_ "time/tzdata"
)

// DefaultTimezone is the zone a schedule is read in when staff give none.
const DefaultTimezone = "Asia/Shanghai"

// Schedule says when a playlist sounds: once at an instant, or on a
// recurrence read in Timezone. Exactly one of OnceAt and Recurring is set.
type Schedule struct {
	ID         int64       `json:"id"`
	PlaylistID int64       `json:"playlist_id"`
	Targets    Targets     `json:"targets"`
	Timezone   string      `json:"timezone"`
	OnceAt     *time.Time  `json:"once_at,omitempty"`
	Recurring  *Recurrence `json:"recurring,omitempty"`
	// NotBefore, when set, is the first instant a recurrence may sound:
	// the moment the schedule was created. A daily 07:30 created at 22:04
	// has no 07:30 on its first day, on any screen nor on any box. Unset
	// (a box that got the schedule from an older controller) means no
	// bound. A one-off's OnceAt is chosen explicitly and is not bounded.
	NotBefore *time.Time `json:"not_before,omitempty"`
}

// Recurrence is a set of wall-clock times on some days.
//
// Times are "HH:MM" in the schedule's time zone. Weekdays are ISO numbers,
// 1 = Monday … 7 = Sunday; empty means every day. StartDate is the first day
// (YYYY-MM-DD, required); EndDate, if set, the last day, inclusive.
// ExceptDates are days on which nothing plays (holidays).
type Recurrence struct {
	Times       []string `json:"times"`
	Weekdays    []int    `json:"weekdays,omitempty"`
	StartDate   string   `json:"start_date"`
	EndDate     string   `json:"end_date,omitempty"`
	ExceptDates []string `json:"except_dates,omitempty"`
}

const dateLayout = "2006-01-02"

// Location loads the schedule's time zone, defaulting to DefaultTimezone.
func (s Schedule) Location() (*time.Location, error) {
	name := s.Timezone
	if name == "" {
		name = DefaultTimezone
	}
	loc, err := loadLocation(name)
	// "Local" is whatever zone the reading machine is set to, so the
	// controller and a box could disagree about when a schedule sounds.
	if err != nil || name == "Local" {
		return nil, invalid("timezone", ReasonTimezoneUnknown, fmt.Sprintf("unknown time zone %q (use an IANA name such as Asia/Shanghai)", name), "value", name)
	}
	return loc, nil
}

// zones caches loaded time zones by name. time.LoadLocation reads and
// parses the zoneinfo file on every call (about 0.1 ms, most of the cost of
// expanding a week of a schedule), and schedules are validated and
// expanded on every planner wake and every coverage report. A Location is
// immutable, so sharing one is safe; a process keeps the zone rules it
// first read until it restarts. Failures are not cached.
var zones sync.Map // string → *time.Location

func loadLocation(name string) (*time.Location, error) {
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	zones.Store(name, loc)
	return loc, nil
}

// Validate checks everything about a schedule that needs no store.
func (s Schedule) Validate() error {
	if s.PlaylistID <= 0 {
		return invalid("playlist_id", ReasonPlaylistRequired, "must name a playlist")
	}
	if s.Targets.Empty() {
		return invalid("targets", ReasonTargetsEmpty, "choose the whole county, some townships or some villages")
	}
	if _, err := s.Location(); err != nil {
		return err
	}
	switch {
	case s.OnceAt == nil && s.Recurring == nil:
		return invalid("once_at", ReasonScheduleWhen, "give either once_at or recurring")
	case s.OnceAt != nil && s.Recurring != nil:
		return invalid("recurring", ReasonScheduleBoth, "give either once_at or recurring, not both")
	case s.Recurring != nil:
		return s.Recurring.validate()
	}
	return nil
}

func (r Recurrence) validate() error {
	if len(r.Times) == 0 {
		return invalid("recurring.times", ReasonScheduleNoTimes, "give at least one time of day, such as 07:00")
	}
	for i, t := range r.Times {
		if _, _, err := parseClock(t); err != nil {
			return invalid(fmt.Sprintf("recurring.times[%d]", i), ReasonClockInvalid, err.Error(), "value", t)
		}
	}
	for i, d := range r.Weekdays {
		if d < 1 || d > 7 {
			return invalid(fmt.Sprintf("recurring.weekdays[%d]", i), ReasonWeekdayInvalid, "must be 1 (Monday) to 7 (Sunday)", "value", d)
		}
	}
	start, err := time.Parse(dateLayout, r.StartDate)
	if err != nil {
		return invalid("recurring.start_date", ReasonDateInvalid, "must be a date such as 2026-03-01", "value", r.StartDate)
	}
	if r.EndDate != "" {
		end, err := time.Parse(dateLayout, r.EndDate)
		if err != nil {
			return invalid("recurring.end_date", ReasonDateInvalid, "must be a date such as 2026-03-31", "value", r.EndDate)
		}
		if end.Before(start) {
			return invalid("recurring.end_date", ReasonEndBeforeStart, "is before start_date")
		}
	}
	for i, d := range r.ExceptDates {
		if _, err := time.Parse(dateLayout, d); err != nil {
			return invalid(fmt.Sprintf("recurring.except_dates[%d]", i), ReasonDateInvalid, "must be a date such as 2026-10-01", "value", d)
		}
	}
	return nil
}

// parseClock reads "HH:MM" (24-hour), digits only: the fmt.Sscanf it
// replaces also took "+7:30" and " 7:30".
func parseClock(s string) (hour, min int, err error) {
	num := func(a, b byte) (int, bool) {
		return int(a-'0')*10 + int(b-'0'), '0' <= a && a <= '9' && '0' <= b && b <= '9'
	}
	if len(s) == 5 && s[2] == ':' {
		h, okh := num(s[0], s[1])
		m, okm := num(s[3], s[4])
		if okh && okm && h <= 23 && m <= 59 {
			return h, m, nil
		}
	}
	return 0, 0, fmt.Errorf("%q is not a time of day in HH:MM form, such as 07:30", s)
}

// Occurrences returns the start instants of the schedule in [from, to),
// in order, as UTC. An invalid schedule yields an error.
//
// Where the wall clock is not one-to-one, the rules of RFC 5545 apply: a
// time skipped when clocks spring forward sounds as far after the jump as
// it was meant to be after its start (02:30 on a 02:00→03:00 night sounds
// at 03:30), and a time that occurs twice when clocks fall back sounds once,
// at its first occurrence.
func (s Schedule) Occurrences(from, to time.Time) ([]time.Time, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.OnceAt != nil {
		if !s.OnceAt.Before(from) && s.OnceAt.Before(to) {
			return []time.Time{s.OnceAt.UTC()}, nil
		}
		return nil, nil
	}
	if s.NotBefore != nil && from.Before(*s.NotBefore) {
		from = *s.NotBefore
	}
	if !from.Before(to) {
		return nil, nil
	}
	x := s.expansion()
	// Walk calendar days of the schedule's zone, from the day before `from`
	// (a late local time may fall after `from` in UTC) to the day after `to`.
	// Days are civil dates held in UTC: midnight itself does not exist on
	// some days in some zones (America/Santiago springs forward at 00:00),
	// so stepping local midnights could stand still.
	lf, lt := from.In(x.loc), to.In(x.loc)
	day := time.Date(lf.Year(), lf.Month(), lf.Day()-1, 0, 0, 0, 0, time.UTC)
	if day.Before(x.start) {
		day = x.start
	}
	last := time.Date(lt.Year(), lt.Month(), lt.Day()+1, 0, 0, 0, 0, time.UTC)
	if !x.end.IsZero() && x.end.Before(last) {
		last = x.end
	}
	var out, buf []time.Time
	for ; !day.After(last); day = day.AddDate(0, 0, 1) {
		buf = x.on(day, buf[:0])
		for _, at := range buf {
			if !at.Before(from) && at.Before(to) {
				out = append(out, at)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return dedupe(out), nil
}

// expansion is a validated recurrence ready to expand day by day.
type expansion struct {
	loc        *time.Location
	start, end time.Time    // civil dates at 00:00 UTC; end is zero when open
	except     map[int]bool // civilDay of each excepted date
	days       map[time.Weekday]bool
	clocks     [][2]int
}

// expansion prepares a recurring schedule that passed Validate.
func (s Schedule) expansion() expansion {
	loc, _ := s.Location()
	r := s.Recurring
	x := expansion{loc: loc, except: map[int]bool{}, days: map[time.Weekday]bool{}}
	x.start, _ = time.Parse(dateLayout, r.StartDate)
	if r.EndDate != "" {
		x.end, _ = time.Parse(dateLayout, r.EndDate)
	}
	for _, d := range r.ExceptDates {
		if t, err := time.Parse(dateLayout, d); err == nil {
			x.except[civilDay(t)] = true
		}
	}
	for _, d := range r.Weekdays {
		x.days[time.Weekday(d%7)] = true
	}
	for _, t := range r.Times {
		h, m, _ := parseClock(t)
		x.clocks = append(x.clocks, [2]int{h, m})
	}
	return x
}

// on returns the instants, in UTC, at which the recurrence sounds on the
// civil date day, unordered, appended to out; nothing on days it is silent
// or out of range.
func (x expansion) on(day time.Time, out []time.Time) []time.Time {
	if day.Before(x.start) || (!x.end.IsZero() && day.After(x.end)) {
		return out
	}
	if len(x.days) > 0 && !x.days[day.Weekday()] {
		return out
	}
	if x.except[civilDay(day)] {
		return out
	}
	for _, c := range x.clocks {
		out = append(out, wallClock(day.Year(), day.Month(), day.Day(), c[0], c[1], x.loc).UTC())
	}
	return out
}

// civilDay is the date of day as YYYYMMDD: a map key that needs no
// formatting.
func civilDay(day time.Time) int {
	y, m, d := day.Date()
	return y*10000 + int(m)*100 + d
}

// wallClock is the instant at which clocks in loc read h:m on the given
// date. time.Date leaves the answer unspecified where the wall clock is not
// one-to-one, and in practice differs by zone (New York's skipped 02:30
// comes out as 01:30, Berlin's as 03:30); this settles both cases the
// RFC 5545 way, as Occurrences documents.
func wallClock(y int, mo time.Month, d, h, m int, loc *time.Location) time.Time {
	at := time.Date(y, mo, d, h, m, 0, 0, loc)
	naive := time.Date(y, mo, d, h, m, 0, 0, time.UTC)
	if at.Hour() != h || at.Minute() != m || at.Day() != d {
		// Skipped: at is naive read with the offset on one side of the
		// jump; the answer is naive read with the offset before it, which
		// is the later of the two readings.
		_, off := at.Zone()
		if alt := naive.Add(-time.Duration(off) * time.Second); alt.After(at) {
			return alt
		}
		return at
	}
	// Repeated: if an earlier zone period also reads h:m, use it.
	if start, _ := at.ZoneBounds(); !start.IsZero() {
		_, prev := start.Add(-time.Nanosecond).Zone()
		if alt := naive.Add(-time.Duration(prev) * time.Second); alt.Before(start) && alt.Before(at) {
			if w := alt.In(loc); w.Hour() == h && w.Minute() == m && w.Day() == d {
				return alt
			}
		}
	}
	return at
}

// dedupe drops repeated instants (two "HH:MM" entries that are equal, or a
// skipped wall time landing on another: 02:30 and 03:30 on a night that
// jumps from 02:00 to 03:00).
func dedupe(ts []time.Time) []time.Time {
	if len(ts) < 2 {
		return ts
	}
	out := ts[:1]
	for _, t := range ts[1:] {
		if !t.Equal(out[len(out)-1]) {
			out = append(out, t)
		}
	}
	return out
}

// Next returns up to n occurrences at or after `after`, looking at most a
// year ahead.
func (s Schedule) Next(after time.Time, n int) ([]time.Time, error) {
	if n <= 0 {
		return nil, s.Validate()
	}
	occ, err := s.Occurrences(after, after.AddDate(1, 0, 1))
	if err != nil {
		return nil, err
	}
	if len(occ) > n {
		occ = occ[:n]
	}
	return occ, nil
}

// Last returns the start of the final occurrence, and false when the
// schedule never ends (a recurrence with no end date) or is invalid. A
// recurrence whose every day is excluded never sounds; its Last is the zero
// time, which is before any now.
func (s Schedule) Last() (time.Time, bool) {
	if s.OnceAt != nil {
		return s.OnceAt.UTC(), true
	}
	if s.Recurring == nil || s.Recurring.EndDate == "" || s.Validate() != nil {
		return time.Time{}, false
	}
	// The end date itself may be a silent weekday or a holiday: walk back
	// to the last day that sounds.
	x := s.expansion()
	for day := x.end; !day.Before(x.start); day = day.AddDate(0, 0, -1) {
		occ := x.on(day, nil)
		if len(occ) == 0 {
			continue
		}
		last := occ[0]
		for _, t := range occ[1:] {
			if t.After(last) {
				last = t
			}
		}
		return last, true
	}
	return time.Time{}, true
}

// OccurrenceKey is the stable text form of an occurrence used in reports
// and stores: RFC 3339 in UTC, second precision.
func OccurrenceKey(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// String describes a recurrence for logs.
func (r Recurrence) String() string {
	return fmt.Sprintf("%s on %v from %s to %s except %s", strings.Join(r.Times, ","), r.Weekdays, r.StartDate, r.EndDate, strings.Join(r.ExceptDates, ","))
}
