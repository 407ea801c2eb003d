package playlists_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/playlists"
)

// daily is a valid recurring schedule: every day at times, from start, read
// in zone.
func daily(zone, start string, times ...string) playlists.Schedule {
	return playlists.Schedule{
		ID:         1,
		PlaylistID: 1,
		Targets:    playlists.Targets{All: true},
		Timezone:   zone,
		Recurring:  &playlists.Recurrence{Times: times, StartDate: start},
	}
}

func once(at time.Time) playlists.Schedule {
	return playlists.Schedule{ID: 2, PlaylistID: 1, Targets: playlists.Targets{Townships: []string{"城关镇"}}, OnceAt: &at}
}

// with returns s with its recurrence changed by f (s is not modified).
func with(s playlists.Schedule, f func(*playlists.Recurrence)) playlists.Schedule {
	r := *s.Recurring
	f(&r)
	s.Recurring = &r
	return s
}

// at parses an RFC 3339 time or fails the test.
func at(tb testing.TB, s string) time.Time {
	tb.Helper()
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// keys formats instants the way stores do, so failures read as UTC text.
func keys(ts []time.Time) []string {
	out := []string{}
	for _, t := range ts {
		out = append(out, playlists.OccurrenceKey(t))
	}
	return out
}

func fieldOf(err error) string {
	var fe *playlists.FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

func TestScheduleValidate(t *testing.T) {
	base := daily("Asia/Shanghai", "2026-03-01", "07:00")
	onceAt := at(t, "2026-03-01T07:00:00+08:00")
	tests := []struct {
		name  string
		s     playlists.Schedule
		field string // "" means valid
	}{
		{"valid recurring", base, ""},
		{"valid once", once(onceAt), ""},
		{"default zone", daily("", "2026-03-01", "07:00"), ""},
		{"utc", daily("UTC", "2026-03-01", "07:00"), ""},
		{"new york", daily("America/New_York", "2026-03-01", "07:00"), ""},
		{"full recurrence", with(base, func(r *playlists.Recurrence) {
			r.Times = []string{"00:00", "12:30", "23:59"}
			r.Weekdays = []int{1, 2, 3, 4, 5, 6, 7}
			r.EndDate = "2026-03-01"
			r.ExceptDates = []string{"2026-10-01"}
		}), ""},

		{"no playlist", func() playlists.Schedule { s := base; s.PlaylistID = 0; return s }(), "playlist_id"},
		{"negative playlist", func() playlists.Schedule { s := base; s.PlaylistID = -3; return s }(), "playlist_id"},
		{"no targets", func() playlists.Schedule { s := base; s.Targets = playlists.Targets{}; return s }(), "targets"},
		{"unknown zone", daily("Mars/Olympus_Mons", "2026-03-01", "07:00"), "timezone"},
		{"local zone", daily("Local", "2026-03-01", "07:00"), "timezone"},
		{"zone path", daily("../../etc/passwd", "2026-03-01", "07:00"), "timezone"},
		{"neither once nor recurring", func() playlists.Schedule { s := base; s.Recurring = nil; return s }(), "once_at"},
		{"both once and recurring", func() playlists.Schedule { s := base; s.OnceAt = &onceAt; return s }(), "recurring"},

		{"no times", with(base, func(r *playlists.Recurrence) { r.Times = nil }), "recurring.times"},
		{"hour 24", with(base, func(r *playlists.Recurrence) { r.Times = []string{"24:00"} }), "recurring.times[0]"},
		{"minute 60", with(base, func(r *playlists.Recurrence) { r.Times = []string{"23:60"} }), "recurring.times[0]"},
		{"one-digit hour", with(base, func(r *playlists.Recurrence) { r.Times = []string{"07:00", "7:30"} }), "recurring.times[1]"},
		{"plus sign", with(base, func(r *playlists.Recurrence) { r.Times = []string{"+7:30"} }), "recurring.times[0]"},
		{"leading space", with(base, func(r *playlists.Recurrence) { r.Times = []string{" 7:30"} }), "recurring.times[0]"},
		{"minus zero", with(base, func(r *playlists.Recurrence) { r.Times = []string{"-0:30"} }), "recurring.times[0]"},
		{"dash", with(base, func(r *playlists.Recurrence) { r.Times = []string{"07-30"} }), "recurring.times[0]"},
		{"no colon", with(base, func(r *playlists.Recurrence) { r.Times = []string{"0730"} }), "recurring.times[0]"},
		{"seconds", with(base, func(r *playlists.Recurrence) { r.Times = []string{"07:30:00"} }), "recurring.times[0]"},
		{"letter", with(base, func(r *playlists.Recurrence) { r.Times = []string{"07:3a"} }), "recurring.times[0]"},
		{"weekday 0", with(base, func(r *playlists.Recurrence) { r.Weekdays = []int{0} }), "recurring.weekdays[0]"},
		{"weekday 8", with(base, func(r *playlists.Recurrence) { r.Weekdays = []int{1, 8} }), "recurring.weekdays[1]"},
		{"no start", with(base, func(r *playlists.Recurrence) { r.StartDate = "" }), "recurring.start_date"},
		{"short start", with(base, func(r *playlists.Recurrence) { r.StartDate = "2026-3-1" }), "recurring.start_date"},
		{"impossible start", with(base, func(r *playlists.Recurrence) { r.StartDate = "2026-02-30" }), "recurring.start_date"},
		{"bad end", with(base, func(r *playlists.Recurrence) { r.EndDate = "31/03/2026" }), "recurring.end_date"},
		{"end before start", with(base, func(r *playlists.Recurrence) { r.EndDate = "2026-02-28" }), "recurring.end_date"},
		{"bad except", with(base, func(r *playlists.Recurrence) { r.ExceptDates = []string{"2026-10-01", "Oct 1"} }), "recurring.except_dates[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if got := fieldOf(err); got != tt.field {
				t.Fatalf("Validate() = %v, want an error on field %q", err, tt.field)
			}
			if err.Error() == tt.field+": " {
				t.Errorf("error %q has no message for people", err)
			}
		})
	}
}

func TestOccurrences(t *testing.T) {
	sh := "T00:00:00+08:00" // midnight in Asia/Shanghai, appended to dates
	tests := []struct {
		name     string
		s        playlists.Schedule
		from, to string
		want     []string
	}{
		{
			name: "shanghai daily",
			s:    daily("Asia/Shanghai", "2026-03-01", "07:00"),
			from: "2026-03-01" + sh, to: "2026-03-04" + sh,
			want: []string{"2026-02-28T23:00:00Z", "2026-03-01T23:00:00Z", "2026-03-02T23:00:00Z"},
		},
		{
			name: "default zone is shanghai",
			s:    daily("", "2026-03-01", "07:00"),
			from: "2026-03-01" + sh, to: "2026-03-02" + sh,
			want: []string{"2026-02-28T23:00:00Z"},
		},
		{
			name: "utc daily",
			s:    daily("UTC", "2026-03-01", "07:00"),
			from: "2026-03-01T00:00:00Z", to: "2026-03-03T00:00:00Z",
			want: []string{"2026-03-01T07:00:00Z", "2026-03-02T07:00:00Z"},
		},
		{
			name: "midnight at from is included",
			s:    daily("Asia/Shanghai", "2026-03-01", "00:00"),
			from: "2026-03-02" + sh, to: "2026-03-04" + sh,
			want: []string{"2026-03-01T16:00:00Z", "2026-03-02T16:00:00Z"},
		},
		{
			name: "midnight at to is excluded",
			s:    daily("Asia/Shanghai", "2026-03-01", "00:00"),
			from: "2026-03-01T00:00:01+08:00", to: "2026-03-03" + sh,
			want: []string{"2026-03-01T16:00:00Z"},
		},
		{
			name: "23:59 belongs to its own day",
			s:    daily("Asia/Shanghai", "2026-03-01", "23:59"),
			from: "2026-03-01" + sh, to: "2026-03-02" + sh,
			want: []string{"2026-03-01T15:59:00Z"},
		},
		{
			name: "23:59 one minute before to",
			s:    daily("Asia/Shanghai", "2026-03-01", "23:59"),
			from: "2026-03-01T23:59:00+08:00", to: "2026-03-01T23:59:00.000000001+08:00",
			want: []string{"2026-03-01T15:59:00Z"},
		},
		{
			name: "empty window at an occurrence",
			s:    daily("Asia/Shanghai", "2026-03-01", "07:00"),
			from: "2026-03-02T07:00:00+08:00", to: "2026-03-02T07:00:00+08:00",
			want: []string{},
		},
		{
			name: "one nanosecond late",
			s:    daily("Asia/Shanghai", "2026-03-01", "07:00"),
			from: "2026-03-02T07:00:00.000000001+08:00", to: "2026-03-03T07:00:00+08:00",
			want: []string{},
		},
		{
			name: "reversed window",
			s:    daily("Asia/Shanghai", "2026-03-01", "07:00"),
			from: "2026-03-05" + sh, to: "2026-03-01" + sh,
			want: []string{},
		},
		{
			name: "times sorted and deduplicated",
			s:    daily("Asia/Shanghai", "2026-03-01", "18:00", "07:00", "12:00", "07:00"),
			from: "2026-03-01" + sh, to: "2026-03-02" + sh,
			want: []string{"2026-02-28T23:00:00Z", "2026-03-01T04:00:00Z", "2026-03-01T10:00:00Z"},
		},
		{
			// 2026-03-01 is a Sunday.
			name: "weekdays mon wed fri",
			s:    with(daily("Asia/Shanghai", "2026-03-01", "07:00"), func(r *playlists.Recurrence) { r.Weekdays = []int{5, 1, 3} }),
			from: "2026-03-01" + sh, to: "2026-03-08" + sh,
			want: []string{"2026-03-01T23:00:00Z", "2026-03-03T23:00:00Z", "2026-03-05T23:00:00Z"},
		},
		{
			name: "weekday 7 is sunday",
			s:    with(daily("Asia/Shanghai", "2026-03-01", "07:00"), func(r *playlists.Recurrence) { r.Weekdays = []int{7} }),
			from: "2026-03-01" + sh, to: "2026-03-15" + sh,
			want: []string{"2026-02-28T23:00:00Z", "2026-03-07T23:00:00Z"},
		},
		{
			// Monday 07:00 in Shanghai is still Sunday in UTC: the weekday
			// is the schedule's, not UTC's.
			name: "weekday read in the schedule's zone",
			s:    with(daily("Asia/Shanghai", "2026-03-01", "07:00"), func(r *playlists.Recurrence) { r.Weekdays = []int{1} }),
			from: "2026-03-01T00:00:00Z", to: "2026-03-02T00:00:00Z",
			want: []string{"2026-03-01T23:00:00Z"},
		},
		{
			name: "weekday in new york",
			s:    with(daily("America/New_York", "2026-03-01", "21:00"), func(r *playlists.Recurrence) { r.Weekdays = []int{7} }),
			from: "2026-03-01T00:00:00Z", to: "2026-03-09T00:00:00Z",
			want: []string{"2026-03-02T02:00:00Z"},
		},
		{
			name: "except dates",
			s: with(daily("Asia/Shanghai", "2026-09-29", "07:00"), func(r *playlists.Recurrence) {
				r.ExceptDates = []string{"2026-10-01", "2026-10-02"}
			}),
			from: "2026-09-30" + sh, to: "2026-10-04" + sh,
			want: []string{"2026-09-29T23:00:00Z", "2026-10-02T23:00:00Z"},
		},
		{
			name: "start and end dates inclusive",
			s: with(daily("Asia/Shanghai", "2026-03-02", "00:00", "23:59"), func(r *playlists.Recurrence) {
				r.EndDate = "2026-03-03"
			}),
			from: "2026-01-01" + sh, to: "2026-12-31" + sh,
			want: []string{"2026-03-01T16:00:00Z", "2026-03-02T15:59:00Z", "2026-03-02T16:00:00Z", "2026-03-03T15:59:00Z"},
		},
		{
			name: "start equals end",
			s: with(daily("America/New_York", "2026-07-04", "12:00"), func(r *playlists.Recurrence) {
				r.EndDate = "2026-07-04"
			}),
			from: "2026-07-01T00:00:00Z", to: "2026-07-10T00:00:00Z",
			want: []string{"2026-07-04T16:00:00Z"},
		},
		{
			name: "window before start",
			s:    daily("Asia/Shanghai", "2026-03-10", "07:00"),
			from: "2026-03-01" + sh, to: "2026-03-10" + sh,
			want: []string{},
		},
		{
			name: "window after end",
			s:    with(daily("Asia/Shanghai", "2026-03-01", "07:00"), func(r *playlists.Recurrence) { r.EndDate = "2026-03-05" }),
			from: "2026-03-06" + sh, to: "2026-04-01" + sh,
			want: []string{},
		},
		{
			// Clocks go 02:00 EST → 03:00 EDT on 2026-03-08. A skipped
			// 02:30 sounds at 03:30 EDT, after 01:45, not at 01:30 before it.
			name: "new york spring forward",
			s:    daily("America/New_York", "2026-03-07", "02:30", "01:45"),
			from: "2026-03-07T00:00:00-05:00", to: "2026-03-10T00:00:00-04:00",
			want: []string{
				"2026-03-07T06:45:00Z", "2026-03-07T07:30:00Z", // EST
				"2026-03-08T06:45:00Z", "2026-03-08T07:30:00Z", // 01:45 EST, 03:30 EDT
				"2026-03-09T05:45:00Z", "2026-03-09T06:30:00Z", // EDT
			},
		},
		{
			name: "new york skipped time lands on another",
			s:    daily("America/New_York", "2026-03-08", "03:30", "02:30"),
			from: "2026-03-08T00:00:00-05:00", to: "2026-03-09T00:00:00-04:00",
			want: []string{"2026-03-08T07:30:00Z"},
		},
		{
			name: "new york spring forward daily 07:00",
			s:    daily("America/New_York", "2026-03-01", "07:00"),
			from: "2026-03-07T00:00:00Z", to: "2026-03-10T00:00:00Z",
			want: []string{"2026-03-07T12:00:00Z", "2026-03-08T11:00:00Z", "2026-03-09T11:00:00Z"},
		},
		{
			// Clocks go 02:00 EDT → 01:00 EST on 2026-11-01: 01:30 happens
			// twice and sounds once, the first time.
			name: "new york fall back",
			s:    daily("America/New_York", "2026-10-31", "01:30", "07:00"),
			from: "2026-10-31T00:00:00-04:00", to: "2026-11-03T00:00:00-05:00",
			want: []string{
				"2026-10-31T05:30:00Z", "2026-10-31T11:00:00Z", // EDT
				"2026-11-01T05:30:00Z", "2026-11-01T12:00:00Z", // 01:30 EDT, 07:00 EST
				"2026-11-02T06:30:00Z", "2026-11-02T12:00:00Z", // EST
			},
		},
		{
			// Berlin's jumps are at 02:00 → 03:00 and 03:00 → 02:00 local;
			// time.Date resolves them the other way round from New York's.
			name: "berlin spring forward",
			s:    daily("Europe/Berlin", "2026-03-29", "02:30"),
			from: "2026-03-29T00:00:00Z", to: "2026-03-30T00:00:00Z",
			want: []string{"2026-03-29T01:30:00Z"},
		},
		{
			name: "berlin fall back",
			s:    daily("Europe/Berlin", "2026-10-25", "02:30"),
			from: "2026-10-24T12:00:00Z", to: "2026-10-26T00:00:00Z",
			want: []string{"2026-10-25T00:30:00Z"},
		},
		{
			// Santiago springs forward at midnight, 2026-09-06 00:00 → 01:00:
			// midnight does not exist that day. Walking local midnights
			// used to stand still on it forever.
			name: "santiago midnight gap",
			s:    daily("America/Santiago", "2026-09-04", "00:00", "07:00"),
			from: "2026-09-05T00:00:00-04:00", to: "2026-09-07T00:00:00-03:00",
			want: []string{
				"2026-09-05T04:00:00Z", "2026-09-05T11:00:00Z",
				"2026-09-06T04:00:00Z", "2026-09-06T10:00:00Z", // 01:00 -03, 07:00 -03
			},
		},
		{
			name: "once inside",
			s:    once(at(t, "2026-03-01T07:00:00+08:00")),
			from: "2026-03-01" + sh, to: "2026-03-02" + sh,
			want: []string{"2026-02-28T23:00:00Z"},
		},
		{
			name: "once at from",
			s:    once(at(t, "2026-03-01T07:00:00+08:00")),
			from: "2026-02-28T23:00:00Z", to: "2026-02-28T23:00:01Z",
			want: []string{"2026-02-28T23:00:00Z"},
		},
		{
			name: "once at to",
			s:    once(at(t, "2026-03-01T07:00:00+08:00")),
			from: "2026-02-28T00:00:00Z", to: "2026-02-28T23:00:00Z",
			want: []string{},
		},
		{
			name: "once before",
			s:    once(at(t, "2026-03-01T07:00:00+08:00")),
			from: "2026-03-01T07:00:01+08:00", to: "2027-01-01T00:00:00Z",
			want: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.Occurrences(at(t, tt.from), at(t, tt.to))
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range got {
				if o.Location() != time.UTC {
					t.Errorf("occurrence %v is not in UTC", o)
				}
			}
			if !reflect.DeepEqual(keys(got), tt.want) {
				t.Errorf("Occurrences(%s, %s)\n got %q\nwant %q", tt.from, tt.to, keys(got), tt.want)
			}
		})
	}
}

func TestOccurrencesWholeYear(t *testing.T) {
	tests := []struct {
		zone string
		want int // occurrences in 2026
	}{
		{"Asia/Shanghai", 365},
		{"UTC", 365},
		{"America/New_York", 365},
		{"Europe/Berlin", 365},
		{"America/Santiago", 365},
	}
	for _, tt := range tests {
		t.Run(tt.zone, func(t *testing.T) {
			loc, err := time.LoadLocation(tt.zone)
			if err != nil {
				t.Fatal(err)
			}
			s := daily(tt.zone, "2025-01-01", "00:00")
			got, err := s.Occurrences(time.Date(2026, 1, 1, 0, 0, 0, 0, loc), time.Date(2027, 1, 1, 0, 0, 0, 0, loc))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Errorf("got %d occurrences, want %d", len(got), tt.want)
			}
			for i := 1; i < len(got); i++ {
				if d := got[i].Sub(got[i-1]); d < 23*time.Hour || d > 25*time.Hour {
					t.Errorf("%v to %v: %v apart", got[i-1], got[i], d)
				}
			}
		})
	}
}

func TestOccurrencesInvalid(t *testing.T) {
	s := daily("Asia/Shanghai", "2026-03-01", "25:00")
	if _, err := s.Occurrences(at(t, "2026-03-01T00:00:00Z"), at(t, "2026-03-02T00:00:00Z")); fieldOf(err) != "recurring.times[0]" {
		t.Fatalf("Occurrences of an invalid schedule: err = %v", err)
	}
}

func TestNext(t *testing.T) {
	s := daily("Asia/Shanghai", "2026-03-01", "07:00", "18:00")
	tests := []struct {
		name  string
		s     playlists.Schedule
		after string
		n     int
		want  []string
	}{
		{"three", s, "2026-03-01T08:00:00+08:00", 3, []string{"2026-03-01T10:00:00Z", "2026-03-01T23:00:00Z", "2026-03-02T10:00:00Z"}},
		{"at an occurrence includes it", s, "2026-03-01T18:00:00+08:00", 1, []string{"2026-03-01T10:00:00Z"}},
		{"before start", s, "2026-01-01T00:00:00Z", 1, []string{"2026-02-28T23:00:00Z"}},
		{"zero", s, "2026-03-01T08:00:00+08:00", 0, []string{}},
		{"negative", s, "2026-03-01T08:00:00+08:00", -1, []string{}},
		{"fewer than n before the end", with(s, func(r *playlists.Recurrence) { r.EndDate = "2026-03-02" }),
			"2026-03-02T12:00:00+08:00", 5, []string{"2026-03-02T10:00:00Z"}},
		{"more than a year ahead", daily("Asia/Shanghai", "2028-03-01", "07:00"), "2026-03-01T00:00:00Z", 1, []string{}},
		{"once ahead", once(at(t, "2026-05-01T09:00:00+08:00")), "2026-03-01T00:00:00Z", 2, []string{"2026-05-01T01:00:00Z"}},
		{"once past", once(at(t, "2026-05-01T09:00:00+08:00")), "2026-05-01T01:00:01Z", 2, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.Next(at(t, tt.after), tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(keys(got), tt.want) {
				t.Errorf("Next(%s, %d) = %q, want %q", tt.after, tt.n, keys(got), tt.want)
			}
		})
	}
	t.Run("invalid", func(t *testing.T) {
		bad := daily("Nowhere/Town", "2026-03-01", "07:00")
		for _, n := range []int{0, 1} {
			if _, err := bad.Next(at(t, "2026-03-01T00:00:00Z"), n); fieldOf(err) != "timezone" {
				t.Errorf("Next(n=%d) err = %v, want a timezone error", n, err)
			}
		}
	})
}

func TestLast(t *testing.T) {
	base := daily("Asia/Shanghai", "2026-03-01", "07:00", "18:00")
	tests := []struct {
		name   string
		s      playlists.Schedule
		want   string // "" for the zero time
		wantOK bool
	}{
		{"once", once(at(t, "2026-05-01T09:00:00+08:00")), "2026-05-01T01:00:00Z", true},
		{"never ends", base, "", false},
		{"end date", with(base, func(r *playlists.Recurrence) { r.EndDate = "2026-03-31" }), "2026-03-31T10:00:00Z", true},
		{"end date in new york", with(daily("America/New_York", "2026-03-01", "07:00"), func(r *playlists.Recurrence) { r.EndDate = "2026-03-31" }),
			"2026-03-31T11:00:00Z", true},
		// 2026-03-31 is a Tuesday; Mondays only → 2026-03-30.
		{"end date not a chosen weekday", with(base, func(r *playlists.Recurrence) {
			r.EndDate = "2026-03-31"
			r.Weekdays = []int{1}
		}), "2026-03-30T10:00:00Z", true},
		{"end date excepted", with(base, func(r *playlists.Recurrence) {
			r.EndDate = "2026-03-31"
			r.ExceptDates = []string{"2026-03-31"}
		}), "2026-03-30T10:00:00Z", true},
		{"every day excepted", with(base, func(r *playlists.Recurrence) {
			r.EndDate = "2026-03-02"
			r.ExceptDates = []string{"2026-03-01", "2026-03-02"}
		}), "", true},
		{"invalid", with(base, func(r *playlists.Recurrence) { r.EndDate = "2026-02-01" }), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.s.Last()
			want := time.Time{}
			if tt.want != "" {
				want = at(t, tt.want)
			}
			if !got.Equal(want) || ok != tt.wantOK {
				t.Errorf("Last() = %v, %v; want %v, %v", got, ok, want, tt.wantOK)
			}
			if ok && tt.want != "" {
				// Last is the final occurrence: Occurrences agrees.
				occ, err := tt.s.Occurrences(want.AddDate(-1, 0, 0), want.AddDate(1, 0, 0))
				if err != nil {
					t.Fatal(err)
				}
				if n := len(occ); n == 0 || !occ[n-1].Equal(got) {
					t.Errorf("last of Occurrences = %q, Last() = %v", keys(occ), got)
				}
			}
		})
	}
}

func TestOccurrenceKey(t *testing.T) {
	got := playlists.OccurrenceKey(at(t, "2026-03-01T07:00:00.5+08:00"))
	if want := "2026-02-28T23:00:00Z"; got != want {
		t.Errorf("OccurrenceKey = %q, want %q", got, want)
	}
}

func TestLocation(t *testing.T) {
	tests := []struct{ zone, want string }{
		{"", "Asia/Shanghai"},
		{"UTC", "UTC"},
		{"America/New_York", "America/New_York"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			loc, err := playlists.Schedule{Timezone: tt.zone}.Location()
			if err != nil || loc.String() != tt.want {
				t.Errorf("Location() = %v, %v; want %s", loc, err, tt.want)
			}
		})
	}
}

// TestOccurrencesNotBefore: a schedule has no occurrence before it
// existed. A daily 07:30 (Shanghai, 23:30 UTC the day before) created at
// 22:04 on its start date first sounds the next morning.
func TestOccurrencesNotBefore(t *testing.T) {
	created := func(s playlists.Schedule, when string) playlists.Schedule {
		nb := at(t, when)
		s.NotBefore = &nb
		return s
	}
	morning := daily("Asia/Shanghai", "2026-03-01", "07:30")
	tests := []struct {
		name     string
		s        playlists.Schedule
		from, to string
		want     []string
	}{
		{"no bound: the first day's 07:30 counts", morning,
			"2026-02-28T16:00:00Z", "2026-03-02T16:00:00Z", []string{"2026-02-28T23:30:00Z", "2026-03-01T23:30:00Z"}},
		{"created at 22:04: the morning before is not an occurrence", created(morning, "2026-03-01T14:04:00Z"),
			"2026-02-28T16:00:00Z", "2026-03-02T16:00:00Z", []string{"2026-03-01T23:30:00Z"}},
		{"created at 07:29: that morning's 07:30 counts", created(morning, "2026-02-28T23:29:00Z"),
			"2026-02-28T16:00:00Z", "2026-03-01T16:00:00Z", []string{"2026-02-28T23:30:00Z"}},
		{"created exactly at the slot: it counts", created(morning, "2026-02-28T23:30:00Z"),
			"2026-02-28T16:00:00Z", "2026-03-01T16:00:00Z", []string{"2026-02-28T23:30:00Z"}},
		{"created one second after the slot: it does not", created(morning, "2026-02-28T23:30:01Z"),
			"2026-02-28T16:00:00Z", "2026-03-01T16:00:00Z", []string{}},
		{"a window wholly before creation is empty", created(morning, "2026-03-05T00:00:00Z"),
			"2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z", []string{}},
		{"created before the start date: the start date bounds", created(morning, "2026-02-20T00:00:00Z"),
			"2026-02-25T00:00:00Z", "2026-03-01T00:00:00Z", []string{"2026-02-28T23:30:00Z"}},
		{"a one-off is not bounded by its creation", created(once(at(t, "2026-03-01T00:00:00Z")), "2026-03-01T00:00:30Z"),
			"2026-02-28T00:00:00Z", "2026-03-02T00:00:00Z", []string{"2026-03-01T00:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.Occurrences(at(t, tt.from), at(t, tt.to))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(keys(got), tt.want) {
				t.Errorf("got %q, want %q", keys(got), tt.want)
			}
		})
	}
	// Next and an invalid schedule keep their meaning.
	s := created(morning, "2026-03-01T14:04:00Z")
	next, err := s.Next(at(t, "2026-03-01T00:00:00Z"), 1)
	if err != nil || len(next) != 1 || !next[0].Equal(at(t, "2026-03-01T23:30:00Z")) {
		t.Errorf("Next = %v, %v; want 2026-03-01T23:30:00Z", next, err)
	}
	bad := created(with(morning, func(r *playlists.Recurrence) { r.Times = []string{"25:00"} }), "2026-03-05T00:00:00Z")
	if _, err := bad.Occurrences(at(t, "2026-03-01T00:00:00Z"), at(t, "2026-03-02T00:00:00Z")); err == nil {
		t.Error("an invalid schedule wholly before its bound expanded without error")
	}
}
