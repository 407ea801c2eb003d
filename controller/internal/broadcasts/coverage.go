package broadcasts

import (
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/coverage"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// Coverage is the coverage of broadcast b at now, from the stored
// villages and what boxes and people reported: the one computation the
// console's coverage, the reports and the broadcast log sent to the
// upper platform share. nameOf gives people's display names (nil keeps
// usernames).
func Coverage(b store.Broadcast, states []store.VillageState, events []store.Event, confs []store.Confirmation, now time.Time, nameOf func(string) string) coverage.Report {
	return coverage.ComputeBroadcast(CoverageInput(b, Targeted(b.Targets, states), events, confs, now, nameOf))
}

// Targeted is the villages targets select, with what is known of their
// boxes.
func Targeted(t playlists.Targets, states []store.VillageState) []coverage.Village {
	all := make([]playlists.Village, len(states))
	byCode := make(map[string]store.VillageState, len(states))
	for i, v := range states {
		all[i] = playlists.Village{Code: v.Code, Name: v.Name, Township: v.Township, Device: v.Device}
		byCode[v.Code] = v
	}
	var out []coverage.Village
	for _, v := range t.Select(all) {
		cv := coverage.Village{Village: v}
		if a := byCode[v.Code].Agent; a != nil {
			cv.Enrolled, cv.Presence, cv.PresenceAt = true, a.Presence, a.PresenceAt
		}
		out = append(out, cv)
	}
	return out
}

// CoverageEvents is boxes' reports as coverage reads them.
func CoverageEvents(events []store.Event) []coverage.Event {
	out := make([]coverage.Event, len(events))
	for i, e := range events {
		out[i] = coverage.Event{Village: e.Village, Type: e.Type, At: e.At, Occurrence: e.Occurrence, Reason: e.Reason}
	}
	return out
}

// CoverageConfirmations is people's confirmations as coverage reads
// them, with their display names (nameOf; nil keeps usernames).
func CoverageConfirmations(cs []store.Confirmation, nameOf func(string) string) []coverage.Confirmation {
	out := make([]coverage.Confirmation, len(cs))
	for i, c := range cs {
		out[i] = coverage.Confirmation{Village: c.Village, PlayedAt: c.PlayedAt, By: c.CreatedBy, ByName: name(nameOf, c.CreatedBy), Note: c.Note}
	}
	return out
}

// CoverageInput is what coverage needs of a broadcast, its targeted
// villages, and what boxes and people reported.
func CoverageInput(b store.Broadcast, villages []coverage.Village, events []store.Event, confs []store.Confirmation, now time.Time, nameOf func(string) string) coverage.BroadcastInput {
	loc, _ := time.LoadLocation(playlists.DefaultTimezone)
	in := coverage.BroadcastInput{
		Released: b.WasReleased(), ExpiresAt: b.ExpiresAt, Duration: b.Duration(), Now: now, Location: loc,
		Villages: villages, Events: CoverageEvents(events), Confirmations: CoverageConfirmations(confs, nameOf),
	}
	switch b.State {
	case api.BroadcastCancelled:
		in.StoppedAt, in.StoppedBy = b.CancelledAt, name(nameOf, b.CancelledBy)
	case api.BroadcastRejected:
		in.StoppedAt, in.StoppedBy, in.Rejected, in.RejectReason = b.DecidedAt, name(nameOf, b.DecidedBy), true, b.DecisionReason
	}
	return in
}

func name(nameOf func(string) string, who string) string {
	if nameOf == nil {
		return who
	}
	return nameOf(who)
}
