package broadcasts

import (
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// Broadcast states as people see them. pending_approval, rejected and
// cancelled are what people decided; the others follow from the time and
// the boxes' reports.
const (
	StatePending    = "pending_approval" // waiting for a second person
	StateScheduled  = "scheduled"        // released, held until its start time (starts_at); no box has it yet
	StateSending    = "sending"          // released; no box has reported on it yet (or delivery failed: send_error)
	StateInProgress = "in_progress"      // boxes are playing it or have reported on it
	StateDone       = "done"             // every targeted box reported, or it expired after someone played it
	StateCancelled  = "cancelled"
	StateExpired    = "expired" // it expired before approval, or before any village played it
	StateRejected   = "rejected"
)

// State is the state people see of broadcast b at now, given what boxes
// reported (p) and how many targeted villages have a box.
func State(b store.Broadcast, p store.BroadcastProgress, boxes int, now time.Time) string {
	switch b.State {
	case api.BroadcastRejected:
		return StateRejected
	case api.BroadcastCancelled:
		return StateCancelled
	case api.BroadcastPending:
		if !now.Before(b.ExpiresAt) {
			return StateExpired
		}
		return StatePending
	}
	if b.Held {
		if !now.Before(b.ExpiresAt) {
			return StateExpired // expired while held: never sent
		}
		return StateScheduled
	}
	heard := p.Started > 0 || p.Confirmed > 0
	switch {
	case boxes > 0 && p.Final >= boxes:
		return StateDone
	case !now.Before(b.ExpiresAt.Add(b.Duration())): // the last box to start it has finished
		if heard {
			return StateDone
		}
		return StateExpired
	case heard || p.Final > 0:
		return StateInProgress
	}
	return StateSending
}
