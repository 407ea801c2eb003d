package store

import (
	"context"
	"time"

	"github.com/cunxiang/cunxiang/playlists"
)

// BroadcastsCreated returns the broadcasts created in [since, until),
// oldest first: the broadcasts of a coverage report.
func (db *DB) BroadcastsCreated(ctx context.Context, since, until time.Time) ([]Broadcast, error) {
	return queryAll(ctx, db.db, "broadcasts created", scanBroadcast,
		`SELECT `+broadcastCols+` FROM broadcasts WHERE created_at >= $1 AND created_at < $2 ORDER BY id`,
		fmtTime(since), fmtTime(until))
}

// VillageEvents returns the latest reports of a village's box, newest
// first; limit is 1..500 (50 otherwise). The events' primary key (village,
// seq) serves the query.
func (db *DB) VillageEvents(ctx context.Context, village string, limit int) ([]Event, error) {
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	return queryAll(ctx, db.db, "village events", scanEvent, `
		SELECT `+eventCols+`
		FROM events
		WHERE village = $1
		ORDER BY seq DESC LIMIT $2`, village, limit)
}

// VillageConfirmations returns the hand confirmations a village made for
// schedule occurrences that began at or after since, and for broadcasts
// (whatever their time), oldest first.
func (db *DB) VillageConfirmations(ctx context.Context, village string, since time.Time) ([]Confirmation, error) {
	return queryAll(ctx, db.db, "village confirmations", scanConfirmation,
		`SELECT `+confirmationCols+` FROM confirmations
		WHERE village = $1 AND (broadcast_id IS NOT NULL OR occurrence >= $2)
		ORDER BY id`, village, playlists.OccurrenceKey(since))
}
