package store

import (
	"context"
	"database/sql"
	"fmt"
)

// EnrollAllForTest gives every village a box row, as enrollment would,
// in one transaction (enrolling 20,000 boxes one by one would take
// minutes of a benchmark's setup).
func EnrollAllForTest(ctx context.Context, db *DB, villages []string) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO agents (village, mqtt_username, secret_hash, enrolled_at) VALUES ($1, $2, $3, $4)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		now := fmtTime(db.now())
		for _, v := range villages {
			if _, err := ins.ExecContext(ctx, v, AgentUsername(v), hashSecret(v), now); err != nil {
				return fmt.Errorf("enroll %s: %w", v, err)
			}
		}
		return nil
	})
}

// RawInsertForTest is the baseline ingest is measured against: the same
// rows as IngestEvents, inserted with one prepared statement in one
// transaction, with no redelivery check, no ack and no box update.
func RawInsertForTest(ctx context.Context, db *DB, batches []IngestBatch) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `
			INSERT INTO events (village, seq, type, at, schedule_id, occurrence, audio_id, reason, received_at, broadcast_id, test)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, b := range batches {
			recv := fmtTime(b.ReceivedAt)
			for _, e := range b.Events {
				if _, err := ins.ExecContext(ctx, b.Village, e.Seq, e.Type, fmtTime(e.At), nil, nil, nil, e.Reason, recv, e.BroadcastID, e.Test); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
