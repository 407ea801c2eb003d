package playlists_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/playlists"
)

// Schedule expansion runs on every box each time its planner wakes and on
// the controller for every coverage report; arbitration on every wake.
//
//	go test ./playlists -run '^$' -bench . -benchmem

func benchSchedule(tz string, weekdays []int, times ...string) playlists.Schedule {
	return playlists.Schedule{ID: 1, PlaylistID: 1, Targets: playlists.Targets{All: true}, Timezone: tz, Recurring: &playlists.Recurrence{
		Times: times, Weekdays: weekdays, StartDate: "2026-01-01", EndDate: "2027-12-31",
		ExceptDates: []string{"2026-05-01", "2026-10-01", "2026-10-02"},
	}}
}

func benchOccurrences(b *testing.B, s playlists.Schedule, from time.Time, span time.Duration) {
	b.Helper()
	to := from.Add(span)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		occ, err := s.Occurrences(from, to)
		if err != nil {
			b.Fatal(err)
		}
		n = len(occ)
	}
	if n == 0 {
		b.Fatal("no occurrences")
	}
	b.ReportMetric(float64(n), "occurrences")
}

// BenchmarkOccurrencesDaily: three times a day, every day.
func BenchmarkOccurrencesDaily(b *testing.B) {
	from := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	for _, tz := range []string{"Asia/Shanghai", "Europe/Berlin"} { // Berlin: a DST jump inside the month
		s := benchSchedule(tz, nil, "07:00", "12:00", "18:30")
		for _, span := range []struct {
			name string
			d    time.Duration
		}{{"week", 7 * 24 * time.Hour}, {"month", 31 * 24 * time.Hour}} {
			b.Run(fmt.Sprintf("tz=%s/%s", tz, span.name), func(b *testing.B) { benchOccurrences(b, s, from, span.d) })
		}
	}
}

// BenchmarkOccurrencesWeekdays: twice a day, Monday to Friday.
func BenchmarkOccurrencesWeekdays(b *testing.B) {
	from := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	for _, tz := range []string{"Asia/Shanghai", "Europe/Berlin"} {
		s := benchSchedule(tz, []int{1, 2, 3, 4, 5}, "07:00", "18:30")
		for _, span := range []struct {
			name string
			d    time.Duration
		}{{"week", 7 * 24 * time.Hour}, {"month", 31 * 24 * time.Hour}} {
			b.Run(fmt.Sprintf("tz=%s/%s", tz, span.name), func(b *testing.B) { benchOccurrences(b, s, from, span.d) })
		}
	}
}

// BenchmarkLast is what the controller computes for every published schedule.
func BenchmarkLast(b *testing.B) {
	s := benchSchedule("Europe/Berlin", []int{1, 2, 3, 4, 5}, "07:00", "18:30")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.Last(); !ok {
			b.Fatal("no last occurrence")
		}
	}
}

func benchCandidates(n int) []playlists.Candidate {
	at := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	prios := []playlists.Priority{playlists.Routine, playlists.Emergency}
	out := make([]playlists.Candidate, n)
	for i := range out {
		out[i] = playlists.Candidate{
			Priority: prios[i%len(prios)], Scheduled: i%3 == 0, Test: i%5 == 0, ID: int64(n - i),
			Due: at.Add(time.Duration(i%7) * time.Minute), Until: at.Add(time.Hour),
		}
	}
	return out
}

func BenchmarkPick(b *testing.B) {
	for _, n := range []int{4, 64} {
		b.Run(fmt.Sprintf("waiting=%d", n), func(b *testing.B) {
			cs := benchCandidates(n)
			b.ReportAllocs()
			for b.Loop() {
				if playlists.Pick(cs) < 0 {
					b.Fatal("nothing picked")
				}
			}
		})
	}
}

// BenchmarkArbitrate decides over something sounding, with quiet hours.
func BenchmarkArbitrate(b *testing.B) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		b.Fatal(err)
	}
	r := playlists.Rules{Location: sh, QuietHours: []playlists.QuietWindow{{From: "22:00", To: "06:00"}, {From: "12:00", To: "13:30"}}}
	cs := benchCandidates(2)
	now := cs[0].Due.Add(time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if d := r.Arbitrate(&cs[0], cs[1], now); d != playlists.Interrupt {
			b.Fatalf("decision %v, want interrupt", d)
		}
	}
}
