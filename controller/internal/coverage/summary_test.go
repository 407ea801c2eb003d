package coverage

import (
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// TestTally: the summary classes do not overlap, a box that is not online
// and did not play counts as offline rather than missed, and townships add
// up across reports.
func TestTally(t *testing.T) {
	at := time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC)
	vs := []Village{
		{Village: playlists.Village{Code: "1", Township: "东镇", Device: playlists.DeviceAgent}, Enrolled: true, Presence: api.Online},
		{Village: playlists.Village{Code: "2", Township: "东镇", Device: playlists.DeviceAgent}, Enrolled: true, Presence: api.Online},
		{Village: playlists.Village{Code: "3", Township: "南镇", Device: playlists.DeviceAgent}, Enrolled: true, Presence: api.Offline},
		{Village: playlists.Village{Code: "4", Township: "南镇", Device: playlists.DeviceManual}},
		{Village: playlists.Village{Code: "5", Township: "新镇", Device: playlists.DeviceAgent}},
	}
	key := playlists.OccurrenceKey(at)
	r := Compute(Input{Occurrence: at, Duration: time.Minute, Now: at.Add(time.Hour), Villages: vs,
		Events: []Event{
			{Village: "1", Type: api.EventFinished, At: at.Add(time.Minute), Occurrence: key},
			{Village: "3", Type: api.EventFinished, At: at.Add(time.Minute), Occurrence: key}, // played, then went offline
		},
		Confirmations: []Confirmation{{Village: "4", PlayedAt: at, By: "cun"}}})
	var tl Tally
	one := tl.Add(vs, r)
	want := Summary{Targeted: 5, Played: 3, PlayedByBox: 2, PlayedByHand: 1, Missed: 1, Offline: 1}
	if one != want || tl.Summary != want {
		t.Fatalf("summary %+v, tally %+v, want %+v", one, tl.Summary, want)
	}
	for _, c := range []struct {
		code, class string
	}{{"1", "played_by_box"}, {"2", Missed}, {"3", "played_by_box"}, {"4", "played_by_hand"}, {"5", Offline}} {
		for i, vs2 := range r.Villages {
			if vs2.Code == c.code {
				if got := Class(vs[i], vs2, r.WindowEnd); got != c.class {
					t.Errorf("village %s: %s, want %s", c.code, got, c.class)
				}
			}
		}
	}
	// A box that went offline only after the window closed was online
	// when it should have played: missed, not offline.
	late := append([]Village(nil), vs...)
	late[2].PresenceAt = r.WindowEnd.Add(time.Minute)
	r2 := Compute(Input{Occurrence: at, Duration: time.Minute, Now: at.Add(time.Hour), Villages: late})
	var tlate Tally
	if s := tlate.Add(late, r2); s.Missed != 3 || s.Offline != 1 {
		t.Errorf("offline after the window: %+v", s)
	}
	// Before the window closes, an offline box is offline, not pending.
	early := Compute(Input{Occurrence: at, Duration: time.Minute, Now: at, Villages: vs})
	var te Tally
	if s := te.Add(vs, early); s.Offline != 2 || s.Pending != 2 || s.AwaitingConfirmation != 1 {
		t.Errorf("before the window closes: %+v", s)
	}
	// A second report adds up per township, in first-seen order.
	tl.Add(vs, early)
	if len(tl.Townships) != 3 || tl.Townships[0].Name != "东镇" || tl.Townships[0].Targeted != 4 || tl.Townships[0].Pending != 2 || tl.Townships[2].Offline != 2 {
		t.Errorf("townships %+v", tl.Townships)
	}
	if tl.Targeted != 10 {
		t.Errorf("targeted %d", tl.Targeted)
	}
}
