package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// CAPAlert is a CAP message that was received and acted on: an Alert or
// Update with the broadcast it started, or a Cancel with the broadcasts
// it cancelled. Sender and Identifier name it, as CAP references do.
type CAPAlert struct {
	ID         int64
	Sender     string
	Identifier string
	Sent       time.Time
	MsgType    string // Alert, Update or Cancel
	Status     string // Actual, Exercise or Test
	// BroadcastID is the broadcast an Alert or Update started (0 for a
	// Cancel).
	BroadcastID int64
	// Cancelled are the broadcasts an Update or Cancel cancelled.
	Cancelled  []int64
	ReceivedAt time.Time
	ReceivedBy string
	// Raw is the message as received.
	Raw []byte
}

const capAlertCols = `id, sender, identifier, sent, msg_type, status, broadcast_id, cancelled, received_at, received_by, raw`

func scanCAPAlert(s scanner) (CAPAlert, error) {
	var a CAPAlert
	var bid sql.NullInt64
	var cancelled string
	err := s.Scan(&a.ID, &a.Sender, &a.Identifier, timeCol{&a.Sent}, &a.MsgType, &a.Status, &bid, &cancelled,
		timeCol{&a.ReceivedAt}, &a.ReceivedBy, &a.Raw)
	if err != nil {
		return a, err
	}
	a.BroadcastID = bid.Int64
	if err := json.Unmarshal([]byte(cancelled), &a.Cancelled); err != nil {
		return a, fmt.Errorf("cap alert %d cancelled: %w", a.ID, err)
	}
	return a, nil
}

// CreateCAPAlert records a CAP message. ReceivedAt is now. A message with
// the same sender and identifier already stored is a conflict (ECONFLICT).
func (db *DB) CreateCAPAlert(ctx context.Context, a CAPAlert) (CAPAlert, error) {
	a.ReceivedAt = db.now()
	if a.Cancelled == nil {
		a.Cancelled = []int64{}
	}
	if a.Raw == nil {
		a.Raw = []byte{}
	}
	cancelled, _ := json.Marshal(a.Cancelled)
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM cap_alerts WHERE sender = $1 AND identifier = $2`, a.Sender, a.Identifier).Scan(&n)
		if err != nil {
			return fmt.Errorf("create cap alert: %w", err)
		}
		if n > 0 {
			return cx.Errorf(cx.ECONFLICT, "the CAP message %s from %s was received before", a.Identifier, a.Sender).With(api.ReasonCAPDuplicate, "identifier", a.Identifier, "sender", a.Sender)
		}
		err = tx.QueryRowContext(ctx, `
			INSERT INTO cap_alerts (sender, identifier, sent, msg_type, status, broadcast_id, cancelled, received_at, received_by, raw)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
			a.Sender, a.Identifier, fmtTime(a.Sent), a.MsgType, a.Status, nullID(a.BroadcastID), string(cancelled),
			fmtTime(a.ReceivedAt), a.ReceivedBy, a.Raw).Scan(&a.ID)
		if err != nil {
			return fmt.Errorf("create cap alert: %w", err)
		}
		return nil
	})
	if err != nil {
		return CAPAlert{}, err
	}
	return a, nil
}

// CAPAlert returns the CAP message with this sender and identifier
// (ENOTFOUND if none was received).
func (db *DB) CAPAlert(ctx context.Context, sender, identifier string) (CAPAlert, error) {
	a, err := scanCAPAlert(db.db.QueryRowContext(ctx, `SELECT `+capAlertCols+` FROM cap_alerts WHERE sender = $1 AND identifier = $2`, sender, identifier))
	if isNoRows(err) {
		return a, cx.Errorf(cx.ENOTFOUND, "no CAP message %s from %s was received", identifier, sender).With(api.ReasonCAPNotFound, "identifier", identifier, "sender", sender)
	}
	if err != nil {
		return a, fmt.Errorf("cap alert %s/%s: %w", sender, identifier, err)
	}
	return a, nil
}
