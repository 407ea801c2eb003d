package playlists

import (
	"fmt"
	"sort"
	"strings"
	"time"
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
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, Invalid("timezone", fmt.Sprintf("unknown time zone %q (use an IANA name such as Asia/Shanghai)", name))
	}
	return loc, nil
}

// Validate checks everything about a schedule that needs no store.
func (s Schedule) Validate() error {
	if s.PlaylistID <= 0 {
		return Invalid("playlist_id", "must name a playlist")
	}
	if s.Targets.Empty() {
		return Invalid("targets", "choose the whole county, some townships or some villages")
	}
	if _, err := s.Location(); err != nil {
		return err
	}
	switch {
	case s.OnceAt == nil && s.Recurring == nil:
		return Invalid("once_at", "give either once_at or recurring")
	case s.OnceAt != nil && s.Recurring != nil:
		return Invalid("recurring", "give either once_at or recurring, not both")
	case s.Recurring != nil:
		return s.Recurring.validate()
	}
	return nil
}

func (r Recurrence) validate() error {
	if len(r.Times) == 0 {
		return Invalid("recurring.times", "give at least one time of day, such as 07:00")
	}
	for i, t := range r.Times {
		if _, _, err := parseClock(t); err != nil {
			return Invalid(fmt.Sprintf("recurring.times[%d]", i), err.Error())
		}
	}
	for i, d := range r.Weekdays {
		if d < 1 || d > 7 {
			return Invalid(fmt.Sprintf("recurring.weekdays[%d]", i), "must be 1 (Monday) to 7 (Sunday)")
		}
	}
	start, err := time.Parse(dateLayout, r.StartDate)
	if err != nil {
		return Invalid("recurring.start_date", "must be a date such as 2026-03-01")
	}
	if r.EndDate != "" {
		end, err := time.Parse(dateLayout, r.EndDate)
		if err != nil {
			return Invalid("recurring.end_date", "must be a date such as 2026-03-31")
		}
		if end.Before(start) {
			return Invalid("recurring.end_date", "is before start_date")
		}
	}
	for i, d := range r.ExceptDates {
		if _, err := time.Parse(dateLayout, d); err != nil {
			return Invalid(fmt.Sprintf("recurring.except_dates[%d]", i), "must be a date such as 2026-10-01")
		}
	}
	return nil
}

// parseClock reads "HH:MM" (24-hour).
func parseClock(s string) (hour, min int, err error) {
	var h, m int
	if len(s) != 5 || s[2] != ':' {
		return 0, 0, fmt.Errorf("%q is not a time of day in HH:MM form, such as 07:30", s)
	}
	if _, err := fmt.Sscanf(s, "%02d:%02d", &h, &m); err != nil || h > 23 || m > 59 || h < 0 || m < 0 {
		return 0, 0, fmt.Errorf("%q is not a time of day in HH:MM form, such as 07:30", s)
	}
	return h, m, nil
}

// Occurrences returns the start instants of the schedule in [from, to),
// in order, as UTC. An invalid schedule yields an error.
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
	loc, _ := s.Location()
	r := s.Recurring
	start, _ := time.ParseInLocation(dateLayout, r.StartDate, loc)
	var end time.Time
	if r.EndDate != "" {
		end, _ = time.ParseInLocation(dateLayout, r.EndDate, loc)
	}
	except := make(map[string]bool, len(r.ExceptDates))
	for _, d := range r.ExceptDates {
		except[d] = true
	}
	days := make(map[time.Weekday]bool, len(r.Weekdays))
	for _, d := range r.Weekdays {
		days[time.Weekday(d%7)] = true
	}
	clocks := make([][2]int, 0, len(r.Times))
	for _, t := range r.Times {
		h, m, _ := parseClock(t)
		clocks = append(clocks, [2]int{h, m})
	}

	// Walk calendar days in the schedule's zone, from the day before `from`
	// (a late local time may fall after `from` in UTC) to the day after `to`.
	lf := from.In(loc)
	day := time.Date(lf.Year(), lf.Month(), lf.Day()-1, 0, 0, 0, 0, loc)
	if day.Before(start) {
		day = start
	}
	lt := to.In(loc)
	last := time.Date(lt.Year(), lt.Month(), lt.Day()+1, 0, 0, 0, 0, loc)
	if !end.IsZero() && end.Before(last) {
		last = end
	}
	var out []time.Time
	for ; !day.After(last); day = time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, loc) {
		if len(days) > 0 && !days[day.Weekday()] {
			continue
		}
		if except[day.Format(dateLayout)] {
			continue
		}
		for _, c := range clocks {
			at := time.Date(day.Year(), day.Month(), day.Day(), c[0], c[1], 0, 0, loc)
			if !at.Before(from) && at.Before(to) {
				out = append(out, at.UTC())
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return dedupe(out), nil
}

// dedupe drops repeated instants (two "HH:MM" entries that are equal, or a
// DST fold mapping two wall times to one instant).
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
// schedule never ends (a recurrence with no end date).
func (s Schedule) Last() (time.Time, bool) {
	if s.OnceAt != nil {
		return s.OnceAt.UTC(), true
	}
	if s.Recurring == nil || s.Recurring.EndDate == "" {
		return time.Time{}, false
	}
	loc, err := s.Location()
	if err != nil {
		return time.Time{}, false
	}
	end, err := time.ParseInLocation(dateLayout, s.Recurring.EndDate, loc)
	if err != nil {
		return time.Time{}, false
	}
	return end.AddDate(0, 0, 1), true
}

// OccurrenceKey is the stable text form of an occurrence used in reports
// and stores: RFC 3339 in UTC, second precision.
func OccurrenceKey(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// String describes a recurrence for logs.
func (r Recurrence) String() string {
	return fmt.Sprintf("%s on %v from %s to %s except %s", strings.Join(r.Times, ","), r.Weekdays, r.StartDate, r.EndDate, strings.Join(r.ExceptDates, ","))
}
