package coverage

import (
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// Offline is a summary class, not a status: a village with a box that
// missed it, or has not played it yet, while its box was not online.
const Offline = "offline"

// Summary tallies villages in classes that do not overlap, for reports
// that people read: Played splits into PlayedByBox and PlayedByHand, and
// Offline takes the villages that would be Missed or Pending but whose box
// is not online. Targeted is the sum of every other field but Played.
type Summary = api.CoverageSummary

// Class is the summary class of a village's line in a report whose
// window for reports closed at windowEnd: its Status, but "played_by_box"
// or "played_by_hand" for Played, and Offline for a box that has not
// reported playing and is not online, unless it went offline only after
// the window closed (it was online when it should have played: Missed).
func Class(v Village, vs VillageStatus, windowEnd time.Time) string {
	switch vs.Status {
	case Played:
		if vs.ConfirmedByHand {
			return "played_by_hand"
		}
		return "played_by_box"
	case Missed, Pending:
		wentLater := v.Presence == api.Offline && !v.PresenceAt.Before(windowEnd)
		if v.Device == playlists.DeviceAgent && v.Presence != api.Online && vs.ReportedAt == nil && !wentLater {
			return Offline
		}
	}
	return vs.Status
}

func countClass(s *Summary, class string) {
	s.Targeted++
	switch class {
	case "played_by_box":
		s.Played++
		s.PlayedByBox++
	case "played_by_hand":
		s.Played++
		s.PlayedByHand++
	case Partial:
		s.Partial++
	case Failed:
		s.Failed++
	case Missed:
		s.Missed++
	case Offline:
		s.Offline++
	case AwaitingConfirmation:
		s.AwaitingConfirmation++
	case Pending:
		s.Pending++
	case Cancelled:
		s.Cancelled++
	case Rejected:
		s.Rejected++
	case Expired:
		s.Expired++
	}
}

// TownshipSummary is the summary of one township (api.TownshipSummary).
type TownshipSummary = api.TownshipSummary

// Tally is a summary overall and per township, in the order townships
// first appear.
type Tally struct {
	Summary
	Townships []TownshipSummary `json:"townships"`
	towns     map[string]int
}

// Add counts the lines of r; villages are those r was computed from
// (Compute's or ComputeBroadcast's Villages), for their boxes' presence.
// It returns the summary of r alone.
func (t *Tally) Add(villages []Village, r Report) Summary {
	byCode := make(map[string]*Village, len(villages))
	for i := range villages {
		byCode[villages[i].Code] = &villages[i]
	}
	var one Summary
	for _, vs := range r.Villages {
		v := Village{Village: playlists.Village{Code: vs.Code, Name: vs.Name, Township: vs.Township, Device: vs.Device}}
		if p := byCode[vs.Code]; p != nil {
			v = *p
		}
		class := Class(v, vs, r.WindowEnd)
		countClass(&one, class)
		countClass(&t.Summary, class)
		if t.towns == nil {
			t.towns = map[string]int{}
		}
		k, ok := t.towns[vs.Township]
		if !ok {
			k = len(t.Townships)
			t.towns[vs.Township] = k
			t.Townships = append(t.Townships, TownshipSummary{Name: vs.Township})
		}
		countClass(&t.Townships[k].CoverageSummary, class)
	}
	return one
}
