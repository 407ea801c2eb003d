package playlists_test

import (
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/playlists"
)

// Fixtures for arbitration: t0 is 10:00 in Shanghai.
var t0 = time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)

func occ(id int64, at time.Time) playlists.Candidate {
	return playlists.Candidate{Priority: playlists.Routine, Scheduled: true, ID: id, Due: at, Until: at.Add(5 * time.Minute)}
}

func bcast(id int64, p playlists.Priority, issued time.Time) playlists.Candidate {
	return playlists.Candidate{Priority: p, ID: id, Due: issued, Until: issued.Add(time.Hour)}
}

func test(c playlists.Candidate) playlists.Candidate { c.Test = true; return c }

func ptr(c playlists.Candidate) *playlists.Candidate { return &c }

func TestArbitrate(t *testing.T) {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	newYork, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	night := []playlists.QuietWindow{{From: "22:00", To: "06:30"}}
	at23 := time.Date(2026, 3, 1, 23, 0, 0, 0, shanghai)
	at0629 := time.Date(2026, 3, 2, 6, 29, 59, 0, shanghai)
	at0630 := time.Date(2026, 3, 2, 6, 30, 0, 0, shanghai)
	tests := []struct {
		name    string
		rules   playlists.Rules
		playing *playlists.Candidate
		in      playlists.Candidate
		now     time.Time
		want    playlists.Decision
	}{
		{"free loudspeaker: a schedule occurrence starts", playlists.Rules{}, nil, occ(1, t0), t0, playlists.Start},
		{"free loudspeaker: a broadcast starts", playlists.Rules{}, nil, bcast(1, playlists.Urgent, t0), t0, playlists.Start},

		{"emergency cuts a routine occurrence", playlists.Rules{}, ptr(occ(1, t0)), bcast(9, playlists.Emergency, t0.Add(time.Second)), t0.Add(time.Second), playlists.Interrupt},
		{"urgent cuts a routine occurrence", playlists.Rules{}, ptr(occ(1, t0)), bcast(9, playlists.Urgent, t0), t0, playlists.Interrupt},
		{"emergency cuts an urgent broadcast", playlists.Rules{}, ptr(bcast(8, playlists.Urgent, t0)), bcast(9, playlists.Emergency, t0), t0, playlists.Interrupt},
		{"urgent cuts a routine broadcast", playlists.Rules{}, ptr(bcast(8, playlists.Routine, t0)), bcast(9, playlists.Urgent, t0), t0, playlists.Interrupt},
		{"a test emergency cuts a routine occurrence", playlists.Rules{}, ptr(occ(1, t0)), test(bcast(9, playlists.Emergency, t0)), t0, playlists.Interrupt},

		{"equal priority waits: emergency behind emergency", playlists.Rules{}, ptr(bcast(8, playlists.Emergency, t0)), bcast(9, playlists.Emergency, t0.Add(time.Second)), t0.Add(time.Second), playlists.Wait},
		{"equal priority waits: routine broadcast behind routine occurrence", playlists.Rules{}, ptr(occ(1, t0)), bcast(9, playlists.Routine, t0), t0, playlists.Wait},
		{"equal priority waits: real emergency behind a test emergency", playlists.Rules{}, ptr(test(bcast(8, playlists.Emergency, t0))), bcast(9, playlists.Emergency, t0), t0, playlists.Wait},
		{"lower priority waits", playlists.Rules{}, ptr(bcast(8, playlists.Emergency, t0)), bcast(9, playlists.Urgent, t0), t0, playlists.Wait},
		{"unknown priority counts as routine", playlists.Rules{}, ptr(occ(1, t0)), bcast(9, "", t0), t0, playlists.Wait},

		{"an expired broadcast never plays", playlists.Rules{}, nil, bcast(9, playlists.Emergency, t0), t0.Add(time.Hour), playlists.Expire},
		{"one instant before expiry it plays", playlists.Rules{}, nil, bcast(9, playlists.Emergency, t0), t0.Add(time.Hour - time.Nanosecond), playlists.Start},
		{"an expired emergency does not cut routine", playlists.Rules{}, ptr(occ(1, t0)), bcast(9, playlists.Emergency, t0), t0.Add(2 * time.Hour), playlists.Expire},
		{"an occurrence past its grace is skipped", playlists.Rules{}, nil, occ(1, t0), t0.Add(5 * time.Minute), playlists.Expire},
		{"no Until: never expires", playlists.Rules{}, nil, playlists.Candidate{Priority: playlists.Urgent, ID: 3, Due: t0}, t0.AddDate(1, 0, 0), playlists.Start},

		{"quiet hours skip a routine occurrence", playlists.Rules{QuietHours: night}, nil, occ(1, at23), at23, playlists.Skip},
		{"quiet hours hold a routine broadcast", playlists.Rules{QuietHours: night}, nil, bcast(9, playlists.Routine, at23), at23, playlists.Hold},
		{"quiet hours let urgent sound", playlists.Rules{QuietHours: night}, nil, bcast(9, playlists.Urgent, at23), at23, playlists.Start},
		{"quiet hours let emergency cut in", playlists.Rules{QuietHours: night}, ptr(occ(1, at23)), bcast(9, playlists.Emergency, at23), at23, playlists.Interrupt},
		{"quiet hours hold an expired routine broadcast: expiry wins", playlists.Rules{QuietHours: night}, nil, bcast(9, playlists.Routine, at23.Add(-2*time.Hour)), at23, playlists.Expire},
		{"last second of quiet hours", playlists.Rules{QuietHours: night}, nil, occ(1, at0629), at0629, playlists.Skip},
		{"quiet hours end exclusive", playlists.Rules{QuietHours: night}, nil, occ(1, at0630), at0630, playlists.Start},
		{"quiet hours read in the config zone", playlists.Rules{QuietHours: night, Location: newYork}, nil, occ(1, at23), at23, playlists.Start},
		{"quiet hours read in the schedule zone without a config zone",
			playlists.Rules{QuietHours: night}, nil,
			func() playlists.Candidate { c := occ(1, at23); c.Zone = newYork; return c }(), at23, playlists.Start},
		{"quiet hours default to Shanghai", playlists.Rules{QuietHours: night}, nil, bcast(9, playlists.Routine, at23), at23, playlists.Hold},
		{"outside quiet hours routine waits as usual", playlists.Rules{QuietHours: night}, ptr(occ(1, t0)), bcast(9, playlists.Routine, t0), t0, playlists.Wait},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rules.Arbitrate(tt.playing, tt.in, tt.now); got != tt.want {
				t.Fatalf("Arbitrate = %s, want %s", got, tt.want)
			}
		})
	}
	t.Run("package Arbitrate has no quiet hours", func(t *testing.T) {
		if got := playlists.Arbitrate(nil, occ(1, at23), at23); got != playlists.Start {
			t.Fatalf("Arbitrate = %s, want start", got)
		}
	})
}

func TestPick(t *testing.T) {
	tests := []struct {
		name    string
		waiting []playlists.Candidate
		want    int
	}{
		{"nothing waits", nil, -1},
		{"one", []playlists.Candidate{occ(1, t0)}, 0},
		{"highest priority first", []playlists.Candidate{occ(1, t0), bcast(2, playlists.Urgent, t0.Add(time.Minute)), bcast(3, playlists.Emergency, t0.Add(2*time.Minute))}, 2},
		{"equals: first issued first", []playlists.Candidate{bcast(5, playlists.Urgent, t0.Add(2*time.Second)), bcast(6, playlists.Urgent, t0.Add(time.Second))}, 1},
		{"equals: a later-issued broadcast does not jump an earlier occurrence", []playlists.Candidate{bcast(5, playlists.Routine, t0.Add(time.Second)), occ(9, t0)}, 1},
		{"equals at the same instant: schedule occurrence first", []playlists.Candidate{bcast(1, playlists.Routine, t0), occ(9, t0)}, 1},
		{"equals at the same instant: lower id first", []playlists.Candidate{bcast(7, playlists.Urgent, t0), bcast(3, playlists.Urgent, t0)}, 1},
		{"equals: a real broadcast before an earlier test", []playlists.Candidate{test(bcast(1, playlists.Emergency, t0)), bcast(2, playlists.Emergency, t0.Add(time.Minute))}, 1},
		{"a test of higher priority before a real one of lower", []playlists.Candidate{bcast(1, playlists.Urgent, t0), test(bcast(2, playlists.Emergency, t0.Add(time.Minute)))}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := playlists.Pick(tt.waiting); got != tt.want {
				t.Fatalf("Pick = %d, want %d", got, tt.want)
			}
		})
	}
}

// Whatever waits, if anything cuts what is playing, Pick's choice does: the
// planner asks about that one only.
func TestPickedIsTheOneThatCuts(t *testing.T) {
	var all []playlists.Candidate
	for i, p := range []playlists.Priority{playlists.Routine, playlists.Urgent, playlists.Emergency} {
		for j, tst := range []bool{false, true} {
			c := bcast(int64(10*i+j), p, t0.Add(time.Duration(i+j)*time.Second))
			c.Test = tst
			all = append(all, c)
		}
	}
	all = append(all, occ(99, t0))
	for mask := 1; mask < 1<<len(all); mask++ {
		var waiting []playlists.Candidate
		for i, c := range all {
			if mask&(1<<i) != 0 {
				waiting = append(waiting, c)
			}
		}
		picked := waiting[playlists.Pick(waiting)]
		for _, playing := range all {
			cut := false
			for _, w := range waiting {
				cut = cut || playlists.Cuts(w, playing)
			}
			if cut != playlists.Cuts(picked, playing) {
				t.Fatalf("waiting %+v, playing %+v: some cut it, but not the picked %+v", waiting, playing, picked)
			}
		}
	}
}

func TestResumes(t *testing.T) {
	tests := []struct {
		name string
		c    playlists.Candidate
		want bool
	}{
		{"schedule occurrence: not resumed", occ(1, t0), false},
		{"urgent broadcast: resumed", bcast(2, playlists.Urgent, t0), true},
		{"test broadcast: resumed", test(bcast(3, playlists.Routine, t0)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := playlists.Resumes(tt.c); got != tt.want {
				t.Fatalf("Resumes = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestQuietAtNamesTheWindow(t *testing.T) {
	rules := playlists.Rules{QuietHours: []playlists.QuietWindow{{From: "12:00", To: "13:00"}, {From: "22:00", To: "06:30"}}}
	at := time.Date(2026, 3, 1, 15, 0, 0, 0, time.UTC) // 23:00 in Shanghai
	w, ok := rules.QuietAt(occ(1, at), at)
	if !ok || w.String() != "22:00–06:30" {
		t.Fatalf("QuietAt = %v, %v", w, ok)
	}
	if _, ok := rules.QuietAt(bcast(1, playlists.Urgent, at), at); ok {
		t.Fatal("urgent held by quiet hours")
	}
}
